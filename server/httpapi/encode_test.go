package httpapi

import (
	"strings"
	"testing"

	"scalelab/server"
)

func TestDepthExceeds(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name string
		json string
		want bool
	}{
		{"flat", `{"a":1}`, false},
		{"64 levels", nest(64), false},
		{"65 levels", nest(65), true},
		{"brackets in strings do not count", `{"a":"` + strings.Repeat("[", 100) + `"}`, false},
		{"escaped quote keeps the string open", `{"a":"\"` + strings.Repeat("{", 100) + `"}`, false},
		{"objects and arrays mixed", strings.Repeat(`{"a":[`, 33) + strings.Repeat(`]}`, 33), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := depthExceeds([]byte(tt.json), MaxJSONDepth); got != tt.want {
				t.Errorf("depthExceeds(%.40q…) = %v, want %v", tt.json, got, tt.want)
			}
		})
	}
}

func TestETagMatch(t *testing.T) {
	const tag = `"0123456789abcdef"`
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{tag, true},
		{"W/" + tag, true},
		{`"other", ` + tag, true},
		{"*", true},
		{`"other"`, false},
	}
	for _, tt := range tests {
		if got := etagMatch(tt.header, tag); got != tt.want {
			t.Errorf("etagMatch(%q, %q) = %v, want %v", tt.header, tag, got, tt.want)
		}
	}
}

func TestUserEntryL2RoundTrip(t *testing.T) {
	u := &server.User{ID: server.SeedUserID(7), Email: "ada@example.com", Username: "ada",
		PasswordHash: "$argon2id$secret", Profile: server.Profile{Name: "Ada"},
		CreatedAt: server.Now(), UpdatedAt: server.Now(), Version: 3}
	e, err := newUserEntry(u, "stamp")
	if err != nil {
		t.Fatal(err)
	}
	data := e.l2Bytes()
	if strings.Contains(string(data), "argon2id") {
		t.Errorf("L2 bytes carry the password hash: %s", data)
	}
	got, err := entryFromL2(data, e.Version)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Full) != string(e.Full) || string(got.Public) != string(e.Public) || got.ETag != e.ETag || got.Version != 3 {
		t.Errorf("entryFromL2(l2Bytes()) = %+v, want %+v", got, e)
	}
	for _, bad := range [][]byte{nil, {0, 0, 0, 9, '{', '}'}, {0, 0, 0, 1, 'x'}} {
		if _, err := entryFromL2(bad, 1); err == nil {
			t.Errorf("entryFromL2(%q) succeeded, want an error", bad)
		}
	}
}
