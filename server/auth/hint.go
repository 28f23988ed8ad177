package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"scalelab/server"
)

// Write hints are how a client tells any app instance about its own recent
// writes without the instance asking Redis (see httpapi's ryw.go). A write's
// response carries one; the client sends the latest it got back with its
// next requests. A hint names a user, a database position and the time of
// the write, under an HMAC with a key every instance derives from the token
// secret, so that a hint issued by one instance is believed by every other
// and a client cannot make one up (to send its reads to the primary, say).
//
// Text form: "<position>.<unix milliseconds>.<MAC>", the position as
// Position.String writes it ("16/B374D848"), the MAC 16 bytes of
// HMAC-SHA256 over "<user id>|<position>.<milliseconds>" in unpadded
// base64url.

// hintInfo derives the key of write hints from the token key.
const hintInfo = "scalelab write hint v1"

// maxHintLen rejects absurd hints before any parsing or HMAC work: 17 for
// the position, 13 for the time, 22 for the MAC, and the dots.
const maxHintLen = 64

// errBadHint is the one answer to any hint that was not issued for the
// user by an instance sharing this key.
var errBadHint = errors.New("write hint: malformed, or not issued for this user with this key")

// SealHint returns a write hint saying that user userID's write reached
// position p now.
func (i *Issuer) SealHint(userID string, p server.Position) string {
	body := p.String() + "." + strconv.FormatInt(i.now().UnixMilli(), 10)
	return body + "." + i.hintMAC(userID, body)
}

// OpenHint checks a write hint of user userID and returns the position
// and time of the write it names. It fails for anything SealHint did not
// write for userID with this issuer's key.
func (i *Issuer) OpenHint(userID, hint string) (server.Position, time.Time, error) {
	if len(hint) > maxHintLen {
		return 0, time.Time{}, errBadHint
	}
	dot := strings.LastIndexByte(hint, '.')
	if dot < 0 {
		return 0, time.Time{}, errBadHint
	}
	body, mac := hint[:dot], hint[dot+1:]
	if !hmac.Equal([]byte(mac), []byte(i.hintMAC(userID, body))) {
		return 0, time.Time{}, errBadHint
	}
	pos, ms, ok := strings.Cut(body, ".")
	if !ok {
		return 0, time.Time{}, errBadHint
	}
	p, err := server.ParsePosition(pos)
	if err != nil {
		return 0, time.Time{}, errBadHint
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return 0, time.Time{}, errBadHint
	}
	return p, time.UnixMilli(n), nil
}

func (i *Issuer) hintMAC(userID, body string) string {
	m := hmac.New(sha256.New, i.hintKey)
	m.Write([]byte(userID))
	m.Write([]byte{'|'})
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}
