package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"scalelab/server"
)

const testSecret = "a test secret that is long enough for hs256"

func mustIssuer(t *testing.T, o IssuerOptions) *Issuer {
	t.Helper()
	if o.Key == nil {
		key, err := NewKey(testSecret)
		if err != nil {
			t.Fatal(err)
		}
		o.Key = key
	}
	i, err := NewIssuer(o)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func TestNewKey(t *testing.T) {
	short := strings.Repeat("x", MinSecretLen-1)
	tests := []struct {
		name, secret string
		ok           bool
	}{
		{"raw", testSecret, true},
		{"raw too short", short, false},
		{"base64", "base64:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))), true},
		{"base64 url", "base64:" + base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("\xff", 32))), true},
		{"base64 too short", "base64:" + base64.StdEncoding.EncodeToString([]byte(short)), false},
		{"base64 garbage", "base64:!!!", false},
		{"hex", "hex:" + strings.Repeat("ab", 32), true},
		{"hex too short", "hex:" + strings.Repeat("ab", 31), false},
		{"hex garbage", "hex:zz", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := NewKey(tt.secret)
			if (err == nil) != tt.ok {
				t.Fatalf("NewKey(%q) error = %v, want ok %v", tt.secret, err, tt.ok)
			}
			if tt.ok && len(key) != 32 {
				t.Errorf("NewKey(%q) = %d bytes, want 32", tt.secret, len(key))
			}
		})
	}

	a, _ := NewKey(testSecret)
	b, _ := NewKey(testSecret)
	if string(a) != string(b) {
		t.Error("NewKey is not deterministic: instances sharing a secret would not share a key")
	}
	if string(a) == testSecret[:32] {
		t.Error("NewKey returned the raw secret")
	}

	s, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewKey(s); err != nil {
		t.Errorf("NewKey(GenerateSecret()) = %v", err)
	}
}

func TestNewIssuerRejectsShortKey(t *testing.T) {
	if _, err := NewIssuer(IssuerOptions{Key: make([]byte, 16)}); err == nil {
		t.Error("NewIssuer with a 16-byte key succeeded")
	}
}

func TestTokenRoundTrip(t *testing.T) {
	i := mustIssuer(t, IssuerOptions{TTL: 10 * time.Minute})
	want := Subject{UserID: "0190a8a0-0000-7000-8000-000000000001", Stamp: i.Stamp("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")}
	tok, exp, err := i.Issue(want)
	if err != nil {
		t.Fatal(err)
	}
	if exp != 10*time.Minute {
		t.Errorf("Issue expiresIn = %v, want 10m", exp)
	}
	sub, err := i.Verify(tok)
	if err != nil {
		t.Fatalf("Verify(issued token) = %v", err)
	}
	if sub != want {
		t.Errorf("Verify = %+v, want %+v", sub, want)
	}

	// Another instance with the same secret accepts it.
	other := mustIssuer(t, IssuerOptions{})
	if _, err := other.Verify(tok); err != nil {
		t.Errorf("Verify on a second issuer with the same secret = %v", err)
	}
	// One with another secret does not.
	k2, _ := NewKey(testSecret + " but different")
	if _, err := mustIssuer(t, IssuerOptions{Key: k2}).Verify(tok); !isUnauthorized(err) {
		t.Errorf("Verify under another key = %v, want unauthorized", err)
	}

	// Two tokens for one user differ (jti).
	tok2, _, _ := i.Issue(want)
	if tok2 == tok {
		t.Error("two issued tokens are identical")
	}
	if _, _, err := i.Issue(Subject{}); err == nil {
		t.Error("Issue(\"\") succeeded")
	}
}

func isUnauthorized(err error) bool {
	return err != nil && server.ErrorCode(err) == server.EUNAUTHORIZED &&
		server.ErrorMessage(err) == "invalid or expired access token"
}

func TestTokenRejected(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	i := mustIssuer(t, IssuerOptions{TTL: time.Hour, Leeway: -1, Now: clock})
	key := i.key

	sign := func(m jwt.SigningMethod, k any, c jwt.Claims) string {
		t.Helper()
		s, err := jwt.NewWithClaims(m, c).SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := func() *jwt.RegisteredClaims {
		return &jwt.RegisteredClaims{
			Issuer:    tokenIssuer,
			Subject:   "user-1",
			IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		}
	}
	good := sign(jwt.SigningMethodHS256, key, valid())
	if _, err := i.Verify(good); err != nil {
		t.Fatalf("control token rejected: %v", err)
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	expired := valid()
	expired.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Second))
	noExp := valid()
	noExp.ExpiresAt = nil
	future := valid()
	future.NotBefore = jwt.NewNumericDate(now.Add(time.Minute))
	issuedLater := valid()
	issuedLater.IssuedAt = jwt.NewNumericDate(now.Add(time.Minute))
	noSub := valid()
	noSub.Subject = ""
	otherIss := valid()
	otherIss.Issuer = "someone-else"

	parts := strings.Split(good, ".")
	tamperedPayload := base64.RawURLEncoding.EncodeToString([]byte(
		`{"iss":"scalelab","sub":"user-2","iat":` + itoa(now.Add(-time.Minute).Unix()) + `,"exp":` + itoa(now.Add(time.Hour).Unix()) + `}`))

	tests := []struct {
		name  string
		token string
		cause error // nil: only the 401 matters
	}{
		{"expired", sign(jwt.SigningMethodHS256, key, expired), jwt.ErrTokenExpired},
		{"no exp", sign(jwt.SigningMethodHS256, key, noExp), jwt.ErrTokenRequiredClaimMissing},
		{"not yet valid", sign(jwt.SigningMethodHS256, key, future), jwt.ErrTokenNotValidYet},
		{"issued in the future", sign(jwt.SigningMethodHS256, key, issuedLater), jwt.ErrTokenUsedBeforeIssued},
		{"missing sub", sign(jwt.SigningMethodHS256, key, noSub), jwt.ErrTokenRequiredClaimMissing},
		{"other issuer", sign(jwt.SigningMethodHS256, key, otherIss), jwt.ErrTokenInvalidIssuer},
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid()), jwt.ErrTokenSignatureInvalid},
		{"alg none, signature kept", noneHeader(good), jwt.ErrTokenSignatureInvalid},
		{"HS384 same key", sign(jwt.SigningMethodHS384, key, valid()), jwt.ErrTokenSignatureInvalid},
		{"HS512 same key", sign(jwt.SigningMethodHS512, key, valid()), jwt.ErrTokenSignatureInvalid},
		{"RS256", sign(jwt.SigningMethodRS256, rsaKey, valid()), jwt.ErrTokenSignatureInvalid},
		{"tampered payload", parts[0] + "." + tamperedPayload + "." + parts[2], jwt.ErrTokenSignatureInvalid},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flip(parts[2]), jwt.ErrTokenSignatureInvalid},
		{"no signature", parts[0] + "." + parts[1] + ".", jwt.ErrTokenSignatureInvalid},
		{"garbage", "not-a-token", jwt.ErrTokenMalformed},
		{"garbage three parts", "a.b.c", jwt.ErrTokenMalformed},
		{"empty", "", nil},
		{"huge", strings.Repeat("a", 5000), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, err := i.Verify(tt.token)
			if !isUnauthorized(err) {
				t.Fatalf("Verify = (%+v, %v), want a generic unauthorized error", sub, err)
			}
			if sub != (Subject{}) {
				t.Errorf("Verify = %+v, want the zero Subject on failure", sub)
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Errorf("Verify error = %v, want cause %v", err, tt.cause)
			}
		})
	}
}

func TestTokenExpiresWithClock(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 900_000_000, time.UTC)
	now := start
	i := mustIssuer(t, IssuerOptions{TTL: time.Minute, Leeway: 5 * time.Second, Now: func() time.Time { return now }})
	tok, _, err := i.Issue(Subject{UserID: "user-1"})
	if err != nil {
		t.Fatal(err)
	}
	now = start.Add(-4 * time.Second) // a verifier whose clock runs behind: within leeway
	if _, err := i.Verify(tok); err != nil {
		t.Errorf("Verify on a clock 4s behind = %v", err)
	}
	now = start.Add(time.Minute - time.Millisecond) // the whole TTL, though iat rounds down
	if _, err := i.Verify(tok); err != nil {
		t.Errorf("Verify just before the TTL has passed = %v", err)
	}
	now = start.Add(time.Minute + time.Second) // past exp (rounded up); no leeway on exp
	if _, err := i.Verify(tok); !errors.Is(err, jwt.ErrTokenExpired) || !isUnauthorized(err) {
		t.Errorf("Verify after expiry = %v, want expired", err)
	}
}

// noneHeader swaps a token's header for {"alg":"none"} and keeps the rest.
func noneHeader(tok string) string {
	parts := strings.Split(tok, ".")
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	return h + "." + parts[1] + "." + parts[2]
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestStampsTellHashesApartAndNothingElse(t *testing.T) {
	i := mustIssuer(t, IssuerOptions{})
	const h1, h2 = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdDE$aGFzaA", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdDI$aGFzaA"
	if a, b := i.Stamp(h1), i.Stamp(h1); a != b {
		t.Errorf("Stamp of one hash differs between calls: %q, %q", a, b)
	}
	if i.Stamp(h1) == i.Stamp(h2) {
		t.Error("Stamp of two hashes (new salt) is the same: a password change would not end old tokens")
	}
	if other := mustIssuer(t, IssuerOptions{}); other.Stamp(h1) != i.Stamp(h1) {
		t.Error("two issuers with one secret stamp a hash differently: instances would refuse each other's tokens")
	}
	k2, _ := NewKey(testSecret + " but different")
	if mustIssuer(t, IssuerOptions{Key: k2}).Stamp(h1) == i.Stamp(h1) {
		t.Error("the stamp does not depend on the key: it would be a plain hash of the password hash")
	}
}
