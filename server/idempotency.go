package server

import (
	"context"
	"time"
)

// Safe retries: a client that sends a write with an Idempotency-Key header
// may send it again (its answer was lost, it timed out, a proxy retried it)
// and the write is applied once; every retry gets the first answer. The
// HTTP layer (server/httpapi's idempotency.go) does the protocol; a store
// that implements IdempotencyStore keeps the keys.

// IdempotencyTTL is how long an answer is kept for retries with its key.
const IdempotencyTTL = 24 * time.Hour

// SavedResponse is the answer to a write sent with an Idempotency-Key, kept
// to answer its retries.
type SavedResponse struct {
	Status int
	Header map[string]string // the headers that describe the answer (Content-Type, Location, ETag, …)
	Body   []byte
}

// IdempotencyStore keeps the answers of writes sent with an
// Idempotency-Key. id names the key in its scope (who sent it, the method
// and the path); fingerprint identifies the request's content.
type IdempotencyStore interface {
	// ClaimIdempotencyKey claims id for a request with fingerprint for
	// lease, and returns:
	//   - nil, nil: claimed; the caller runs the request, then saves its
	//     answer or, if the request is known not to have been applied,
	//     releases the key;
	//   - the saved answer of the request that ran with id before;
	//   - ECONFLICT: a request with id is still running (its lease is not
	//     over);
	//   - EINVALID (Field "Idempotency-Key"): id was used with a request of
	//     another fingerprint.
	// A key whose answer is older than IdempotencyTTL, or whose request
	// ended without saving an answer and whose lease is over, is claimed
	// again.
	ClaimIdempotencyKey(ctx context.Context, id, fingerprint string, lease time.Duration) (*SavedResponse, error)
	// SaveIdempotentResponse stores the answer of the request that claimed id.
	SaveIdempotentResponse(ctx context.Context, id string, r SavedResponse) error
	// ReleaseIdempotencyKey drops a claim whose request was not applied,
	// so that a retry runs it again.
	ReleaseIdempotencyKey(ctx context.Context, id string) error
}

// ErrIdempotencyKeyInUse is the answer to a request whose key's first
// request is still running.
func ErrIdempotencyKeyInUse() error {
	return Errorf(ECONFLICT, "a request with this Idempotency-Key is still being processed; retry it later")
}

// ErrIdempotencyKeyReused is the answer to a request that reuses a key with
// a different request.
func ErrIdempotencyKeyReused() error {
	return &Error{Code: EINVALID, Message: "the Idempotency-Key was already used with a different request",
		Fields: []FieldError{{Field: "Idempotency-Key", Message: "was already used with a different request body, method or path"}}}
}
