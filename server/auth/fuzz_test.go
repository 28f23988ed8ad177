package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// FuzzVerifyToken: the token parser never panics and accepts nothing but
// tokens signed with the issuer's key by HS256: whatever verifies must
// carry the HMAC-SHA256 of its header and payload, computed here
// independently (no "none", no other algorithm, no altered payload).
func FuzzVerifyToken(f *testing.F) {
	key, err := NewKey("hex:" + strings.Repeat("5a", 32))
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	iss, err := NewIssuer(IssuerOptions{Key: key, TTL: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	valid, _, err := iss.Issue(Subject{UserID: "0190c0de-0000-7000-8000-000000000000", Stamp: iss.Stamp("$argon2id$fuzz")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0.")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30." + strings.Repeat("A", 43))
	parts := strings.Split(valid, ".")
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Fuzz(func(t *testing.T, token string) {
		sub, err := iss.Verify(token)
		if err != nil {
			return
		}
		i := strings.LastIndexByte(token, '.')
		if i < 0 {
			t.Fatalf("Verify(%q) = %q, nil: accepted a token without a signature", token, sub)
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(token[:i]))
		if want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); token[i+1:] != want {
			t.Fatalf("Verify(%q) = %q, nil: accepted a token not signed with the key", token, sub)
		}
	})
}

// FuzzVerifyPassword: the PHC parser never panics on a stored hash, and
// verification never panics on what it accepts (costs above a fuzz loop's
// means are parsed but not run).
func FuzzVerifyPassword(f *testing.F) {
	h, err := Hash("password", Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(h)
	f.Add("$argon2id$v=19$m=64,t=1,p=1$$")
	f.Add("$argon2i$v=19$m=64,t=1,p=1$c2FsdA$a2V5")
	f.Add("$argon2id$v=19$m=-1,t=0,p=0$c2FsdA$a2V5a2V5a2V5a2V5a2V5")
	f.Fuzz(func(t *testing.T, hash string) {
		p, _, _, err := parsePHC(hash)
		if err != nil || p.Memory > 1<<10 || p.Time > 4 || p.Threads > 4 {
			return // refused, or too costly to run in a fuzz loop
		}
		Verify("password", hash)
	})
}
