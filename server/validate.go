package server

import (
	"net/mail"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits from the API contract.
const (
	MaxEmailLen    = 254
	MinUsernameLen = 3
	MaxUsernameLen = 100
	MinPasswordLen = 8
	MaxPasswordLen = 1024
	MaxNameLen     = 100
	MaxAvatarLen   = 2048
)

// NewUser is a sign-up as the client sent it, before hashing.
type NewUser struct {
	Email    string
	Username string
	Password string
	Name     string
	Avatar   string
}

// Validate returns one FieldError per field that breaks the contract.
func (n NewUser) Validate() []FieldError {
	var errs []FieldError
	errs = appendIf(errs, "email", ValidateEmail(n.Email))
	errs = appendIf(errs, "username", ValidateUsername(n.Username))
	errs = appendIf(errs, "password", ValidatePassword(n.Password))
	errs = appendIf(errs, "profile.name", ValidateName(n.Name))
	errs = appendIf(errs, "profile.avatar", ValidateAvatar(n.Avatar))
	return errs
}

// UserChange is an update as the client sent it: nil fields are absent.
type UserChange struct {
	Email    *string
	Username *string
	Password *string
	Name     *string
	Avatar   *string
}

// Validate checks the fields that are present.
func (c UserChange) Validate() []FieldError {
	var errs []FieldError
	check := func(field string, v *string, f func(string) string) {
		if v != nil {
			errs = appendIf(errs, field, f(*v))
		}
	}
	check("email", c.Email, ValidateEmail)
	check("username", c.Username, ValidateUsername)
	check("password", c.Password, ValidatePassword)
	check("profile.name", c.Name, ValidateName)
	check("profile.avatar", c.Avatar, ValidateAvatar)
	return errs
}

func appendIf(errs []FieldError, field, msg string) []FieldError {
	if msg == "" {
		return errs
	}
	return append(errs, FieldError{Field: field, Message: msg})
}

// ValidateEmail returns "" for a valid address, else why it is not: a bare
// addr-spec (no display name, no angle brackets) with a local part and a
// domain, at most 254 characters.
func ValidateEmail(s string) string {
	switch {
	case s == "":
		return "is required"
	case len(s) > MaxEmailLen:
		return "must be at most 254 characters"
	case !utf8.ValidString(s) || strings.ContainsAny(s, " \t\r\n<>\"(),;:\\[]"):
		return "must be a valid email address"
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "must be a valid email address"
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "must be a valid email address"
	}
	domain := s[at+1:]
	if strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "must be a valid email address"
	}
	return ""
}

// ValidateUsername returns "" for 3–100 characters of [A-Za-z0-9_.-].
func ValidateUsername(s string) string {
	if len(s) < MinUsernameLen || len(s) > MaxUsernameLen {
		return "must be 3 to 100 characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return "may contain only letters, digits, '_', '.' and '-'"
		}
	}
	return ""
}

// ValidatePassword returns "" for 8–1024 characters. The password is used
// exactly as given: no trimming, no normalization.
func ValidatePassword(s string) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	n := utf8.RuneCountInString(s)
	if n < MinPasswordLen || n > MaxPasswordLen {
		return "must be 8 to 1024 characters"
	}
	return ""
}

// ValidateName returns "" for at most 100 characters, none of them control
// characters: a display name has no use for them, and PostgreSQL cannot
// store a NUL at all, so both stores must refuse what one cannot keep.
func ValidateName(s string) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	if utf8.RuneCountInString(s) > MaxNameLen {
		return "must be at most 100 characters"
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return "must not contain control characters"
	}
	return ""
}

// ValidateAvatar returns "" for an empty string or an absolute http(s) URL
// of at most 2048 characters.
func ValidateAvatar(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > MaxAvatarLen {
		return "must be at most 2048 characters"
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(s, " \t\r\n") {
		return "must be an http or https URL"
	}
	return ""
}

// FoldKey returns the case-insensitive key under which an email or username
// is unique. Both stores keep it in its own column with a unique index, so
// uniqueness is decided by the database, also under concurrent sign-ups.
func FoldKey(s string) string {
	return strings.ToLower(s)
}
