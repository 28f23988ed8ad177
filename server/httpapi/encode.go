package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"scalelab/server"
	"scalelab/server/auth"
)

// Request limits from the API contract.
const (
	MaxBodyBytes = 1 << 20 // larger bodies get 413
	MaxJSONDepth = 64      // deeper nesting gets 400
)

// problem is an RFC 9457 problem details object.
type problem struct {
	Type   string              `json:"type"`
	Title  string              `json:"title"`
	Status int                 `json:"status"`
	Detail string              `json:"detail"`
	Errors []server.FieldError `json:"errors,omitempty"`
}

// problemType names each kind of problem with a URN, so clients can tell
// them apart without parsing the detail text.
func problemType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "urn:scalelab:problem:bad-request"
	case http.StatusUnauthorized:
		return "urn:scalelab:problem:unauthorized"
	case http.StatusForbidden:
		return "urn:scalelab:problem:forbidden"
	case http.StatusNotFound:
		return "urn:scalelab:problem:not-found"
	case http.StatusMethodNotAllowed:
		return "urn:scalelab:problem:method-not-allowed"
	case http.StatusConflict:
		return "urn:scalelab:problem:conflict"
	case http.StatusRequestEntityTooLarge:
		return "urn:scalelab:problem:body-too-large"
	case http.StatusUnsupportedMediaType:
		return "urn:scalelab:problem:unsupported-media-type"
	case http.StatusUnprocessableEntity:
		return "urn:scalelab:problem:validation"
	case http.StatusPreconditionFailed:
		return "urn:scalelab:problem:precondition-failed"
	case http.StatusTooManyRequests:
		return "urn:scalelab:problem:rate-limited"
	case http.StatusServiceUnavailable:
		return "urn:scalelab:problem:unavailable"
	case http.StatusInternalServerError:
		return "urn:scalelab:problem:internal"
	}
	return "about:blank"
}

// writeProblem writes a problem+json response.
func writeProblem(w http.ResponseWriter, status int, detail string, fields []server.FieldError) {
	p := problem{Type: problemType(status), Title: http.StatusText(status), Status: status, Detail: detail, Errors: fields}
	if status == http.StatusUnprocessableEntity && p.Errors == nil {
		p.Errors = []server.FieldError{}
	}
	body, err := marshalJSON(p)
	if err != nil {
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"encode problem"}`)
		status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Del("ETag")
	w.WriteHeader(status)
	w.Write(body)
}

// errorStatus maps domain error codes to HTTP statuses: the one table.
func errorStatus(code string) int {
	switch code {
	case server.EBADREQUEST:
		return http.StatusBadRequest
	case server.EINVALID:
		return http.StatusUnprocessableEntity
	case server.ENOTFOUND:
		return http.StatusNotFound
	case server.ECONFLICT:
		return http.StatusConflict
	case server.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case server.EFORBIDDEN:
		return http.StatusForbidden
	case server.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case server.EQUOTA:
		return http.StatusConflict
	case server.EPRECONDITION:
		return http.StatusPreconditionFailed
	}
	return http.StatusInternalServerError
}

// writeError writes err as a problem. Internal errors are logged with their
// full text and answered with a generic detail.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	if errors.Is(err, auth.ErrBusy) {
		// The hashing queue is full: a fast 503 the client may retry,
		// rather than a wait of seconds (issue 9, finding 3).
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, "the server is busy hashing passwords; retry shortly", nil)
		return
	}
	status := errorStatus(server.ErrorCode(err))
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		// A dependency is down (the primary database, say): worth a retry
		// soon, not a hammering.
		w.Header().Set("Retry-After", "1")
	}
	if status >= 500 {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	var fields []server.FieldError
	var e *server.Error
	if errors.As(err, &e) {
		fields = e.Fields
	}
	if server.ErrorCode(err) == server.EQUOTA {
		writeQuotaProblem(w, server.ErrorMessage(err))
		return
	}
	writeProblem(w, status, server.ErrorMessage(err), fields)
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, r *http.Request, log *slog.Logger, status int, v any) {
	body, err := marshalJSON(v)
	if err != nil {
		writeError(w, r, log, fmt.Errorf("encode response: %w", err))
		return
	}
	writeBody(w, status, body)
}

// writeBody writes an already encoded JSON body.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// readJSON reads a request body that must be one JSON object and decodes it
// into v. Unknown fields are ignored. The error is an *server.Error whose
// code carries the status: 413 and 415 come back as httpError.
func readJSON(w http.ResponseWriter, r *http.Request, v any) *httpError {
	body, herr := readBody(w, r)
	if herr != nil {
		return herr
	}
	if i := firstNonSpace(body); i < 0 || body[i] != '{' {
		if i < 0 {
			return badRequest("request body is empty; send a JSON object")
		}
		if !json.Valid(body) {
			return badRequest("request body is not valid JSON")
		}
		return badRequest("request body must be a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return badRequest(fmt.Sprintf("field %q: must be %s, not %s", te.Field, jsonTypeName(te.Type.Kind().String()), te.Value))
		case errors.As(err, &te):
			return badRequest(fmt.Sprintf("must be %s, not %s", jsonTypeName(te.Type.Kind().String()), te.Value))
		case errors.As(err, &se):
			return badRequest(fmt.Sprintf("request body is not valid JSON (at byte %d): %v", se.Offset, se))
		default:
			return badRequest("request body is not valid JSON: " + err.Error())
		}
	}
	return nil
}

// readBody enforces the media type, the size limit and the nesting limit,
// and returns the body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *httpError) {
	// A body must say it is JSON: taking an unlabelled one as JSON lets a
	// cross-site form post (text/plain) act as a JSON request.
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil, &httpError{status: http.StatusUnsupportedMediaType,
			detail: "the request has no Content-Type; send application/json"}
	}
	if mt, _, err := mime.ParseMediaType(ct); err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return nil, &httpError{status: http.StatusUnsupportedMediaType,
			detail: fmt.Sprintf("Content-Type %q is not supported; send application/json", ct)}
	}
	if r.ContentLength > MaxBodyBytes {
		return nil, tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge()
		}
		return nil, badRequest("read request body: " + err.Error())
	}
	if depthExceeds(body, MaxJSONDepth) {
		return nil, badRequest(fmt.Sprintf("JSON is nested deeper than %d levels", MaxJSONDepth))
	}
	// JSON text is UTF-8 (RFC 8259 §8.1). The decoder would quietly turn
	// bad bytes in strings into U+FFFD, and raw record data would carry them
	// to the store, where PostgreSQL refuses them (a 500).
	if !utf8.Valid(body) {
		return nil, badRequest("request body is not valid UTF-8")
	}
	return body, nil
}

// httpError is a problem decided by the HTTP layer itself (400, 413, 415).
type httpError struct {
	status int
	detail string
}

func (e *httpError) write(w http.ResponseWriter) { writeProblem(w, e.status, e.detail, nil) }

func badRequest(detail string) *httpError {
	return &httpError{status: http.StatusBadRequest, detail: detail}
}

func tooLarge() *httpError {
	return &httpError{status: http.StatusRequestEntityTooLarge,
		detail: fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes)}
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "a boolean"
	case "int", "int64", "float64", "uint":
		return "a number"
	}
	return "another type"
}

func firstNonSpace(b []byte) int {
	for i, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return i
		}
	}
	return -1
}

// depthExceeds reports whether JSON text b nests arrays and objects deeper
// than max. It scans bytes without decoding, so a hostile body is refused
// before the decoder recurses into it. Malformed text is left to the decoder.
func depthExceeds(b []byte, max int) bool {
	if bytes.Count(b, []byte{'['})+bytes.Count(b, []byte{'{'}) <= max {
		return false
	}
	depth, inString, escaped := 0, false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}
