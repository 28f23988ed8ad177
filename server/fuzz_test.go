package server

import (
	"strings"
	"testing"
)

// FuzzValidate: the validators never panic, and what they accept the
// stores can keep: valid UTF-8, within the contract's lengths, no NUL.
func FuzzValidate(f *testing.F) {
	f.Add("ada@example.com", "ada_l", "correct horse", "Ada", "https://example.com/a.png")
	f.Add("a@b", "a.b-c", "12345678", "", "")
	f.Add("\"a b\"@example.com", "..", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", "\x00", "javascript:alert(1)")
	f.Add("Ada <ada@example.com>", strings.Repeat("a", 101), strings.Repeat("é", 1025), strings.Repeat("n", 101), "http://")
	f.Fuzz(func(t *testing.T, email, username, password, name, avatar string) {
		n := NewUser{Email: email, Username: username, Password: password, Name: name, Avatar: avatar}
		errs := n.Validate()
		c := UserChange{Email: &email, Username: &username, Password: &password, Name: &name, Avatar: &avatar}
		if got := c.Validate(); len(got) != len(errs) {
			t.Fatalf("UserChange.Validate = %v, NewUser.Validate = %v: want the same", got, errs)
		}
		bad := map[string]bool{}
		for _, e := range errs {
			bad[e.Field] = true
		}
		for field, v := range map[string]string{"email": email, "username": username, "profile.name": name, "profile.avatar": avatar} {
			if !bad[field] && strings.ContainsRune(v, 0) {
				t.Errorf("%s %q accepted with a NUL", field, v)
			}
		}
		if !bad["email"] && len(email) > MaxEmailLen {
			t.Errorf("email of %d bytes accepted", len(email))
		}
		if !bad["username"] && (len(username) < MinUsernameLen || len(username) > MaxUsernameLen) {
			t.Errorf("username %q accepted", username)
		}
	})
}
