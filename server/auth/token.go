package auth

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"scalelab/server"
)

// Access tokens are JWTs signed with HMAC-SHA256 under one key that every
// app instance derives from the same configured secret, so a token issued by
// one instance verifies on any other.
//
// Exactly one algorithm is accepted. A verifier that let the token's header
// pick the algorithm would accept "alg: none" (no signature at all) or an
// RS256/HS384 token forged with a key the attacker chose; Verify pins
// HS256 with jwt.WithValidMethods and checks the method again in the key
// function.
//
// Revocation: the HTTP layer looks the token's subject up on every
// authenticated request, so a deleted user's tokens stop working at once.
// A password change ends every token issued before it the same way: a
// token carries a stamp of its user's password hash at issue time (an
// HMAC of it, which says nothing about the hash), and the lookup compares
// it with the stamp of the current hash, which travels with the cached
// user entry in L1 and L2. A new password has a new salt and so a new
// stamp, even when it is the old password again. Comparing stamps rather
// than an issue time with a password_changed_at needs no new column and no
// clock: JWT times are whole seconds, and a token issued in the second of
// the change could not be told from one issued just before it. Expiry
// bounds everything else (a leaked token works until exp or the next
// password change).

const (
	// MinSecretLen is the shortest secret NewKey accepts: HS256 is only as
	// strong as its key, and RFC 7518 §3.2 asks for at least 256 bits.
	MinSecretLen = 32
	// DefaultTokenTTL is how long a token lives unless IssuerOptions says
	// otherwise: long enough for a load-test run, short enough that a
	// leaked token dies the same day.
	DefaultTokenTTL = time.Hour
	// DefaultLeeway is the clock skew between instances that nbf and iat
	// checks tolerate; exp is checked without it (see Verify).
	DefaultLeeway = 5 * time.Second
	// maxTokenLen rejects absurd inputs before any parsing or HMAC work.
	maxTokenLen = 4096
	// tokenIssuer is the iss claim; a token from another system signed with
	// a reused secret still fails.
	tokenIssuer = "scalelab"
	// keyInfo separates the token key from any other key one might derive
	// from the same secret later.
	keyInfo = "scalelab access token HS256 v1"
	// stampInfo derives the key of password stamps from the token key.
	stampInfo = "scalelab password stamp v1"
)

// NewKey turns a configured secret into the HS256 signing key. The secret
// is either raw text, "base64:<std or url base64>" or "hex:<hex>", and must
// hold at least MinSecretLen bytes after decoding. The key is derived with
// HKDF-SHA256, so every instance given the same secret gets the same key,
// and the raw secret is never used as a MAC key directly.
func NewKey(secret string) ([]byte, error) {
	raw, err := decodeSecret(secret)
	if err != nil {
		return nil, err
	}
	if len(raw) < MinSecretLen {
		return nil, fmt.Errorf("token secret: %d bytes, need at least %d", len(raw), MinSecretLen)
	}
	key, err := hkdf.Key(sha256.New, raw, nil, keyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive token key: %w", err)
	}
	return key, nil
}

func decodeSecret(s string) ([]byte, error) {
	switch {
	case strings.HasPrefix(s, "base64:"):
		v := strings.TrimRight(strings.TrimPrefix(s, "base64:"), "=")
		if b, err := base64.RawStdEncoding.DecodeString(v); err == nil {
			return b, nil
		}
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("token secret: bad base64: %w", err)
		}
		return b, nil
	case strings.HasPrefix(s, "hex:"):
		b, err := hex.DecodeString(strings.TrimPrefix(s, "hex:"))
		if err != nil {
			return nil, fmt.Errorf("token secret: bad hex: %w", err)
		}
		return b, nil
	default:
		return []byte(s), nil
	}
}

// GenerateSecret returns a new random secret in the "base64:" form NewKey
// reads. A single instance without a configured secret can use one; several
// instances must share a configured one.
func GenerateSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token secret: %w", err)
	}
	return "base64:" + base64.RawStdEncoding.EncodeToString(b), nil
}

// IssuerOptions configure an Issuer.
type IssuerOptions struct {
	// Key is the HS256 key from NewKey (at least 32 bytes). Required.
	Key []byte
	// TTL is a token's lifetime; DefaultTokenTTL when zero.
	TTL time.Duration
	// Leeway is the clock skew tolerated; DefaultLeeway when zero, none
	// when negative.
	Leeway time.Duration
	// Now is the clock; time.Now when nil. Tests set it.
	Now func() time.Time
}

// Issuer issues and verifies access tokens. It is safe for concurrent use.
type Issuer struct {
	key      []byte
	stampKey []byte
	hintKey  []byte // of write hints (SealHint)
	ttl      time.Duration
	now      func() time.Time
	parser   *jwt.Parser
}

// claims are the token's claims: sub is the user id, jti a random id that
// makes every token distinct (and names it in logs or a future deny list),
// pws the password stamp (see Stamp).
type claims struct {
	jwt.RegisteredClaims
	PasswordStamp string `json:"pws,omitempty"`
}

// Subject is who a token speaks for: the user's id, and the stamp of the
// password they had when it was issued.
type Subject struct {
	UserID string
	Stamp  string
}

// Stamp returns the password stamp of a password hash: a short keyed hash
// of it, equal for equal hashes, that tells nothing about the hash to
// whoever reads a token.
func (i *Issuer) Stamp(passwordHash string) string {
	m := hmac.New(sha256.New, i.stampKey)
	m.Write([]byte(passwordHash))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:12])
}

// NewIssuer returns an Issuer for o.
func NewIssuer(o IssuerOptions) (*Issuer, error) {
	if len(o.Key) < MinSecretLen {
		return nil, fmt.Errorf("token issuer: key of %d bytes, need at least %d", len(o.Key), MinSecretLen)
	}
	if o.TTL == 0 {
		o.TTL = DefaultTokenTTL
	}
	if o.TTL < 0 {
		return nil, fmt.Errorf("token issuer: negative ttl %v", o.TTL)
	}
	switch {
	case o.Leeway == 0:
		o.Leeway = DefaultLeeway
	case o.Leeway < 0:
		o.Leeway = 0
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	stampKey, err := hkdf.Key(sha256.New, o.Key, nil, stampInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("token issuer: derive stamp key: %w", err)
	}
	hintKey, err := hkdf.Key(sha256.New, o.Key, nil, hintInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("token issuer: derive hint key: %w", err)
	}
	return &Issuer{
		key:      append([]byte(nil), o.Key...),
		stampKey: stampKey,
		hintKey:  hintKey,
		ttl:      o.TTL,
		now:      o.Now,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithIssuer(tokenIssuer),
			jwt.WithLeeway(o.Leeway),
			jwt.WithTimeFunc(o.Now),
			jwt.WithStrictDecoding(),
		),
	}, nil
}

// TTL is the lifetime of the tokens Issue returns.
func (i *Issuer) TTL() time.Duration { return i.ttl }

// Issue returns a signed token for s and how long it is valid (the token
// response's expires_in).
func (i *Issuer) Issue(s Subject) (string, time.Duration, error) {
	userID := s.UserID
	if userID == "" {
		return "", 0, errors.New("issue token: empty user id")
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", 0, fmt.Errorf("issue token: read jti: %w", err)
	}
	// JWT times are whole seconds. iat and nbf round down and exp rounds
	// up, so a token lives at least the expires_in it is sold with (and
	// less than a second more), never less: a 1s token issued at .9 must
	// not be dead on arrival.
	now := i.now()
	exp := now.Add(i.ttl)
	if up := exp.Truncate(time.Second); !up.Equal(exp) {
		exp = up.Add(time.Second)
	}
	c := claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    tokenIssuer,
		Subject:   userID,
		IssuedAt:  jwt.NewNumericDate(now.Truncate(time.Second)),
		NotBefore: jwt.NewNumericDate(now.Truncate(time.Second)),
		ExpiresAt: jwt.NewNumericDate(exp),
		ID:        base64.RawURLEncoding.EncodeToString(jti),
	}, PasswordStamp: s.Stamp}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(i.key)
	if err != nil {
		return "", 0, fmt.Errorf("issue token: sign: %w", err)
	}
	return tok, i.ttl, nil
}

// Verify checks token and returns its subject: the user id and the
// password stamp it was issued with. Every failure
// (malformed, wrong or missing algorithm, bad signature, expired, not yet
// valid, wrong issuer, missing sub) is a *server.Error with code
// EUNAUTHORIZED and one generic message, so a client learns nothing about
// why; the wrapped cause (errors.Is with the jwt.Err* values) is for logs
// and tests.
func (i *Issuer) Verify(token string) (Subject, error) {
	if token == "" || len(token) > maxTokenLen {
		return Subject{}, unauthorized(errors.New("token empty or too long"))
	}
	var c claims
	_, err := i.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		// WithValidMethods already refused every other alg; this second
		// check keeps the key from ever being used under another method
		// should the parser options change.
		if t.Method != jwt.SigningMethodHS256 {
			return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
		}
		return i.key, nil
	})
	if err != nil {
		return Subject{}, unauthorized(err)
	}
	// The leeway is for iat and nbf, where an instance whose clock runs
	// behind the issuer's would refuse a fresh token. It does not stretch
	// exp: the client was told expires_in, and a token must be dead once
	// that has passed, on every instance.
	if c.ExpiresAt == nil || !i.now().Before(c.ExpiresAt.Time) {
		return Subject{}, unauthorized(jwt.ErrTokenExpired)
	}
	if c.Subject == "" {
		return Subject{}, unauthorized(jwt.ErrTokenRequiredClaimMissing)
	}
	return Subject{UserID: c.Subject, Stamp: c.PasswordStamp}, nil
}

// unauthorized wraps cause under the one generic 401 error.
func unauthorized(cause error) error {
	return fmt.Errorf("verify token: %w: %w", server.Errorf(server.EUNAUTHORIZED, "invalid or expired access token"), cause)
}
