package auth

import (
	"strings"
	"testing"
)

func TestHashVerify(t *testing.T) {
	p := Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	h, err := Hash("correct horse", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("Hash = %q, want a PHC argon2id string", h)
	}
	for _, tc := range []struct {
		password string
		want     bool
	}{
		{"correct horse", true},
		{"correct horse ", false},
		{"Correct horse", false},
		{"", false},
	} {
		got, err := Verify(tc.password, h)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("Verify(%q) = %v, want %v", tc.password, got, tc.want)
		}
	}
	h2, _ := Hash("correct horse", p)
	if h2 == h {
		t.Errorf("two hashes of one password are equal; salts must differ")
	}
}

func TestVerifyRejectsMalformed(t *testing.T) {
	for _, h := range []string{"", "plain", "$argon2i$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAA", "$argon2id$v=19$m=64,t=1,p=1$!!$!!"} {
		if _, err := Verify("x", h); err == nil {
			t.Errorf("Verify(_, %q) succeeded, want an error", h)
		}
	}
}

func TestDefaultParamsAreOWASPMinimum(t *testing.T) {
	if DefaultParams().Memory != 19456 || DefaultParams().Time != 2 || DefaultParams().Threads != 1 {
		t.Errorf("DefaultParams() = %+v, want m=19456 t=2 p=1", DefaultParams())
	}
	if DefaultParams().Weaker() {
		t.Errorf("DefaultParams().Weaker() = true")
	}
	if !(Params{Memory: 64, Time: 1, Threads: 1}).Weaker() {
		t.Errorf("cheap params not reported weaker")
	}
}
