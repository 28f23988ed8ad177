package httpapi

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
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

// UserEntry is what the L1 tier keeps for a user: the encoded response
// rather than only the struct, so a cache hit writes bytes without encoding
// JSON again (BenchmarkGetUser measures the difference).
type UserEntry struct {
	User       *server.User
	Full       []byte // encoded userView: the user's own view
	ETag       string // strong validator of Full
	Public     []byte // encoded publicView: what anyone may see
	PublicETag string // strong validator of Public

	etagHeader []string // {ETag}, ready to assign to a header map
}

// newUserEntry encodes u's views once.
func newUserEntry(u *server.User) (*UserEntry, error) {
	full, err := json.Marshal(fullView(u))
	if err != nil {
		return nil, fmt.Errorf("encode user %s: %w", u.ID, err)
	}
	public, err := json.Marshal(newPublicView(u))
	if err != nil {
		return nil, fmt.Errorf("encode public view of user %s: %w", u.ID, err)
	}
	tag := etag(full)
	return &UserEntry{User: u, Full: full, ETag: tag, Public: public, PublicETag: etag(public), etagHeader: []string{tag}}, nil
}

// WeighUserEntry estimates an entry's memory for the L1 bound.
func WeighUserEntry(_ string, e *UserEntry) uint32 {
	return uint32(len(e.Full) + len(e.Public) + len(e.User.Email) + len(e.User.Username) + len(e.User.PasswordHash) +
		len(e.User.Profile.Name) + len(e.User.Profile.Avatar) + 256)
}

// etag returns a strong entity tag for body.
func etag(body []byte) string {
	h := fnv.New64a()
	h.Write(body)
	return fmt.Sprintf(`"%016x"`, h.Sum64())
}
