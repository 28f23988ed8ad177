// Package server holds scalelab's domain: the user and application-data
// types, the error codes every layer speaks, the store contracts, and input
// validation. Implementations live in subpackages (sqlite, postgres, cache,
// httpapi) that do not know each other; only cmd/scalelab wires them.
package server

import (
	"context"
	"encoding/json"
	"time"
)

// User is an account. PasswordHash never leaves the server: the HTTP layer
// encodes users through its own view types, never this struct.
type User struct {
	ID           string    // UUIDv7, lower-case text
	Email        string    // as given; unique case-insensitively
	Username     string    // as given; unique case-insensitively
	PasswordHash string    // PHC string (argon2id)
	Profile      Profile   //
	CreatedAt    time.Time // UTC, microsecond precision
	UpdatedAt    time.Time // UTC, microsecond precision; advances on every update
	// Version starts at 1 and grows by one on every update. Caches use it to
	// refuse to put an older copy over a newer one, and HTTP uses it in ETags.
	Version int64
}

// Profile is the public part of a user that the user edits.
type Profile struct {
	Name   string
	Avatar string // an http(s) URL or empty
}

// UserUpdate names the fields to change; a nil field is kept as it is.
type UserUpdate struct {
	Email        *string
	Username     *string
	PasswordHash *string
	Name         *string
	Avatar       *string
	// IfVersion, when set, applies the update only if the user's Version
	// is this one: EPRECONDITION otherwise (a compare-and-set for
	// If-Match).
	IfVersion *int64
}

// Record is one piece of application data a user owns.
type Record struct {
	ID        string          // UUIDv7
	UserID    string          // owner
	Data      json.RawMessage // any JSON value, compacted
	CreatedAt time.Time
	UpdatedAt time.Time
}

// RecordPage is one page of a user's records, newest first. NextCursor is
// empty on the last page.
type RecordPage struct {
	Items      []Record
	NextCursor string
}

// UserStore persists users. Implementations fill ID, CreatedAt, UpdatedAt
// and Version on create, and return *Error with ENOTFOUND or ECONFLICT
// where those apply.
type UserStore interface {
	CreateUser(ctx context.Context, u *User) error
	User(ctx context.Context, id string) (*User, error)
	// UserByLogin finds a user by email or username, case-insensitively.
	UserByLogin(ctx context.Context, login string) (*User, error)
	UpdateUser(ctx context.Context, id string, upd UserUpdate) (*User, error)
	DeleteUser(ctx context.Context, id string) error
}

// RecordStore persists application data. Every method is scoped to its
// owner: a record of another user is ENOTFOUND.
type RecordStore interface {
	CreateRecord(ctx context.Context, r *Record) error
	// CreateRecords creates 1 to MaxBatch records of owner userID in one
	// transaction, all or none, as CreateRecord does each (it fills the
	// same fields and sets every r.UserID to userID). The owner's quota is
	// checked for the whole batch: EQUOTA when it would not all fit.
	CreateRecords(ctx context.Context, userID string, rs []*Record) error
	Record(ctx context.Context, userID, id string) (*Record, error)
	// Records lists newest first. The cursor is opaque to callers and stays
	// valid under concurrent inserts (keyset pagination on the UUIDv7 id).
	Records(ctx context.Context, userID string, limit int, cursor string) (*RecordPage, error)
	UpdateRecord(ctx context.Context, userID, id string, data json.RawMessage) (*Record, error)
	DeleteRecord(ctx context.Context, userID, id string) error
}

// MaxBatch is the most records CreateRecords takes, and the most ids one
// batch read names.
const MaxBatch = 100

// Store is everything a database offers the server.
type Store interface {
	UserStore
	RecordStore
	// Ping reports whether the database answers; /readyz uses it.
	Ping(ctx context.Context) error
	Close() error
}
