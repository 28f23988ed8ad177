package server

import (
	"errors"
	"fmt"
)

// Error codes. One table in the HTTP layer maps them to statuses; stores and
// caches only ever speak these.
const (
	ECONFLICT     = "conflict"            // unique email or username taken
	EINTERNAL     = "internal"            // a bug or a failed dependency
	EINVALID      = "invalid"             // input fails validation (422)
	EBADREQUEST   = "bad_request"         // input is not well-formed (400)
	ENOTFOUND     = "not_found"           // no such user or record
	EUNAUTHORIZED = "unauthorized"        // missing or bad credentials
	EFORBIDDEN    = "forbidden"           // authenticated but not allowed
	EUNAVAILABLE  = "unavailable"         // a dependency is down or draining
	EPRECONDITION = "precondition_failed" // If-Match names a version that is no longer current (412)
)

// FieldError names one field that failed validation.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is a domain error. Message is safe to show a client.
type Error struct {
	Code    string
	Message string
	Fields  []FieldError // for EINVALID
	// Field names the conflicting field for ECONFLICT ("email", "username").
	Field string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the client-safe message of err: the *Error's message,
// or a generic one that hides internal details.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
