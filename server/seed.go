package server

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// SeedPassword is the one password every seeded user shares. Seeding hashes
// it once and stores that hash for all users: hashing a million passwords
// with argon2id would take hours and measures nothing the lab cares about.
const SeedPassword = "scalelab-seed-password"

// seedEpoch is the timestamp of seeded user 0's id.
var seedEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// SeedUserID returns the id of the i-th seeded user (0-based). Seeded ids
// are well-formed UUIDv7 values whose timestamp is a fixed epoch plus i
// milliseconds and whose random bits carry i, so a load generator can name
// any seeded user without reading a million ids back from the database.
func SeedUserID(i int) string {
	var b [16]byte
	ms := uint64(seedEpoch.UnixMilli()) + uint64(i)
	b[0] = byte(ms >> 40)
	b[1] = byte(ms >> 32)
	b[2] = byte(ms >> 24)
	b[3] = byte(ms >> 16)
	b[4] = byte(ms >> 8)
	b[5] = byte(ms)
	b[6] = 0x70 // version 7, rand_a high nibble 0
	b[7] = 0x00
	binary.BigEndian.PutUint64(b[8:], uint64(i))
	b[8] = 0x80 | (b[8] & 0x3f) // RFC 9562 variant
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}

// SeedUsername returns the username of the i-th seeded user.
func SeedUsername(i int) string { return fmt.Sprintf("seed%07d", i) }

// SeedEmail returns the email of the i-th seeded user.
func SeedEmail(i int) string { return fmt.Sprintf("seed%07d@seed.scalelab.test", i) }

// SeedUser returns the i-th seeded user with the given shared password hash.
// Its timestamps are the time the seed ran.
func SeedUser(i int, passwordHash string, now time.Time) User {
	return User{
		ID:           SeedUserID(i),
		Email:        SeedEmail(i),
		Username:     SeedUsername(i),
		PasswordHash: passwordHash,
		Profile:      Profile{Name: fmt.Sprintf("Seed User %d", i)},
		CreatedAt:    now,
		UpdatedAt:    now,
		Version:      1,
	}
}
