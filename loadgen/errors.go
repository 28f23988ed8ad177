package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
)

// Classes of failed requests, the keys of Result.ErrorsByClass. An HTTP
// status that is not expected is classed by its code: "http 404", "http 503".
const (
	// ClassTimeout: no complete response within the client's timeout.
	ClassTimeout = "timeout"
	// ClassRefused: the connection was refused (nothing listens).
	ClassRefused = "connection refused"
	// ClassReset: the connection was reset or closed by the server before
	// the response was complete.
	ClassReset = "connection reset"
	// ClassOther: any other transport failure (malformed response, DNS...).
	ClassOther = "other"
	// ClassCheck: an operation returned an error of its own, such as a
	// response that failed its check, rather than an error from Client.Do.
	ClassCheck = "check"
	// ClassSetup: a worker's Setup failed during the run.
	ClassSetup = "setup"
	// ClassThrottled marks a 429 answer. It is not an error: throttled
	// requests are counted apart (Stats.Throttled), never in ErrorsByClass.
	ClassThrottled = "throttled"
)

// RequestError is the error Client.Do returns for a request that failed or
// was throttled.
type RequestError struct {
	Request string // the request's name
	Class   string // one of the Class constants, or "http NNN"
	Status  int    // the HTTP status, 0 for a transport failure
	Err     error  // the transport error, nil for a status
}

func (e *RequestError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Request, e.Class, e.Err)
	}
	return fmt.Sprintf("%s: status %d", e.Request, e.Status)
}

func (e *RequestError) Unwrap() error { return e.Err }

func statusClass(status int) string {
	return "http " + strconv.Itoa(status)
}

// classify maps a transport error to its class.
func classify(err error) string {
	switch {
	case isTimeout(err):
		return ClassTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return ClassRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, io.EOF):
		return ClassReset
	}
	return ClassOther
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
