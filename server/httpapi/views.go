package httpapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"scalelab/server"
)

// userView is the full view of a user: what the user themself sees. It has
// no password field of any kind.
type userView struct {
	ID        string      `json:"id"`
	Email     string      `json:"email"`
	Username  string      `json:"username"`
	Profile   profileView `json:"profile"`
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
}

type profileView struct {
	Name   string `json:"name"`
	Avatar string `json:"avatar"`
}

func fullView(u *server.User) userView {
	return userView{
		ID:        u.ID,
		Email:     u.Email,
		Username:  u.Username,
		Profile:   profileView{Name: u.Profile.Name, Avatar: u.Profile.Avatar},
		CreatedAt: u.CreatedAt.UTC(),
		UpdatedAt: u.UpdatedAt.UTC(),
	}
}

// ownerView is the user's own view on /api/v1 (the answer to their GET,
// PUT and sign-up): the full view and the usage counters that back the
// quota (records stored and bytes of their data), as of the read. No public
// view and nothing a shared cache keeps has them. The GET builds it from a
// cached entry's bytes with withUsage (its test checks the two agree).
type ownerView struct {
	userView
	RecordsCount int64 `json:"records_count"`
	RecordsBytes int64 `json:"records_bytes"`
}

// newOwnerView returns what a sign-up answers: the new user's own view,
// with its usage counters (zero) when the store keeps them. An update
// answers the same view, its counters read after the write
// (writeUserWithTag).
func (a *api) newOwnerView(u *server.User) any {
	if _, ok := a.store.(usageReader); !ok {
		return fullView(u)
	}
	return ownerView{userView: fullView(u)}
}

// usageReader is a store that keeps each user's usage counters (both
// stores do, on the user's row).
type usageReader interface {
	Usage(ctx context.Context, userID string) (server.Usage, error)
}

// usage reads user id's counters for the owner's view; a store without
// them (a test's) has none to show: ok is false.
func (a *api) usage(ctx context.Context, id string) (u server.Usage, ok bool, err error) {
	ur, ok := a.store.(usageReader)
	if !ok {
		return u, false, nil
	}
	u, err = ur.Usage(ctx, id)
	return u, err == nil, err
}

// withUsage returns full, an encoded userView (a cached entry's Full),
// encoded as the ownerView with usage: the counters change with every
// record write, which leaves the user's cached entries alone, so they are
// read apart on each of the owner's reads and added to the cached bytes.
func withUsage(full []byte, usage server.Usage) []byte {
	full = bytes.TrimRight(full, " \t\r\n")
	b := make([]byte, 0, len(full)+64)
	b = append(b, full[:len(full)-1]...) // up to the closing brace
	b = append(b, `,"records_count":`...)
	b = strconv.AppendInt(b, usage.Records, 10)
	b = append(b, `,"records_bytes":`...)
	b = strconv.AppendInt(b, usage.Bytes, 10)
	return append(b, '}')
}

// UserEntry is what the L1 tier keeps for a user: the encoded response
// rather than only the struct, so a cache hit writes bytes without encoding
// JSON again (BenchmarkGetUser measures the difference).
type UserEntry struct {
	// User is the row the entry was encoded from; nil when the entry came
	// from L2, which keeps only the encoded views (never a password hash).
	User       *server.User
	Version    int64  // the user's row version
	Full       []byte // encoded userView: the user's own view
	ETag       string // strong validator of Full
	Public     []byte // encoded publicView: what anyone may see
	PublicETag string // strong validator of Public
	// Stamp is the stamp of the user's password hash (auth.Issuer.Stamp):
	// a token is valid only while it carries the same one, so a password
	// change ends the tokens issued before it. It travels to L2 and back,
	// where the hash itself never goes.
	Stamp string

	etagHeader []string  // {ETag}, ready to assign to a header map
	loadedAt   time.Time // when it was read from L2 or the database
	// unchecked: loaded from the database while Redis could not take the
	// fill, so no invalidation marker judged it: it may be a lagging
	// replica's row from before a write whose invalidation this instance
	// has already heard, and L1 keeps it no longer than degradedL1TTL
	// (see userEntry).
	unchecked bool
}

// newUserEntry encodes u's views once; stamp is the stamp of u's password
// hash.
func newUserEntry(u *server.User, stamp string) (*UserEntry, error) {
	full, err := marshalJSON(fullView(u))
	if err != nil {
		return nil, fmt.Errorf("encode user %s: %w", u.ID, err)
	}
	public, err := marshalJSON(newPublicView(u))
	if err != nil {
		return nil, fmt.Errorf("encode public view of user %s: %w", u.ID, err)
	}
	return newEncodedEntry(u, u.Version, stamp, full, public), nil
}

func newEncodedEntry(u *server.User, version int64, stamp string, full, public []byte) *UserEntry {
	tag := etag(full)
	return &UserEntry{User: u, Version: version, Stamp: stamp, Full: full, ETag: tag, Public: public, PublicETag: etag(public),
		etagHeader: []string{tag}, loadedAt: time.Now()}
}

// WeighUserEntry estimates an entry's memory for the L1 bound.
func WeighUserEntry(_ string, e *UserEntry) uint32 {
	n := len(e.Full) + len(e.Public) + 2*len(e.ETag) + 256
	if u := e.User; u != nil {
		n += len(u.Email) + len(u.Username) + len(u.PasswordHash) + len(u.Profile.Name) + len(u.Profile.Avatar) + 128
	}
	return uint32(n)
}

// l2Format marks an L2 entry that starts with the password stamp. The
// first entries had none and started with the big-endian length of Full,
// whose first byte is 0 for any view under 16 MiB: entryFromL2 still reads
// them, with an empty stamp, which no token matches, so that such an entry
// sends a token's check to the primary rather than failing.
const l2Format byte = 1

// l2Bytes encodes the entry for L2: the format byte, the stamp
// (length-prefixed by one byte), then the two encoded views, the first
// length-prefixed. The version travels beside it in L2's own field.
func (e *UserEntry) l2Bytes() []byte {
	b := make([]byte, 0, 2+len(e.Stamp)+4+len(e.Full)+len(e.Public))
	b = append(b, l2Format, byte(len(e.Stamp)))
	b = append(b, e.Stamp...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Full)))
	b = append(b, e.Full...)
	return append(b, e.Public...)
}

// entryFromL2 decodes what l2Bytes encoded.
func entryFromL2(data []byte, version int64) (*UserEntry, error) {
	var stamp string
	if len(data) >= 2 && data[0] == l2Format {
		n := int(data[1])
		if n > len(data)-2 {
			return nil, errors.New("decode l2 user entry: bad stamp length")
		}
		stamp, data = string(data[2:2+n]), data[2+n:]
	}
	if len(data) < 4 {
		return nil, errors.New("decode l2 user entry: too short")
	}
	n := int(binary.BigEndian.Uint32(data))
	if n > len(data)-4 {
		return nil, errors.New("decode l2 user entry: bad length")
	}
	full, public := data[4:4+n], data[4+n:]
	if !json.Valid(full) || !json.Valid(public) {
		return nil, errors.New("decode l2 user entry: not JSON")
	}
	return newEncodedEntry(nil, version, stamp, full, public), nil
}

// etag returns a strong entity tag for body.
func etag(body []byte) string {
	h := fnv.New64a()
	h.Write(body)
	return fmt.Sprintf(`"%016x"`, h.Sum64())
}
