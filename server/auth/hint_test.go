package auth

import (
	"strings"
	"testing"
	"time"

	"scalelab/server"
)

func TestWriteHints(t *testing.T) {
	now := time.UnixMilli(1_733_184_000_123)
	issuer := func(secret string) *Issuer {
		t.Helper()
		key, err := NewKey(secret)
		if err != nil {
			t.Fatal(err)
		}
		i, err := NewIssuer(IssuerOptions{Key: key, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	i := issuer("a test secret of at least thirty-two bytes")
	const alice, bob = "01890f3e-7b7a-7cc4-9a4e-3f3c2a1b0c9d", "01890f3e-7b7a-7cc4-9a4e-3f3c2a1b0c9e"
	for _, p := range []server.Position{1, 0x16B374D848, server.PositionUnknown} {
		h := i.SealHint(alice, p)
		gotP, gotAt, err := i.OpenHint(alice, h)
		if err != nil || gotP != p || !gotAt.Equal(now) {
			t.Errorf("OpenHint(SealHint(%v)) = %v, %v, %v; want %v, %v, nil", p, gotP, gotAt, err, p, now)
		}
		if len(h) > maxHintLen {
			t.Errorf("SealHint(%v) = %q: %d bytes, over maxHintLen %d", p, h, len(h), maxHintLen)
		}
	}
	good := i.SealHint(alice, 0x16B374D848)
	bad := map[string]string{
		"another user's":     i.SealHint(bob, 0x16B374D848),
		"another secret's":   issuer("another test secret, thirty-two bytes or more").SealHint(alice, 0x16B374D848),
		"position changed":   strings.Replace(good, "16/", "17/", 1),
		"time changed":       strings.Replace(good, ".1733184000123.", ".1733184999123.", 1),
		"mac cut":            good[:len(good)-1],
		"no mac":             good[:strings.LastIndexByte(good, '.')],
		"empty":              "",
		"none":               "none",
		"too long":           good + strings.Repeat("A", maxHintLen),
		"garbage with a dot": "x.y",
	}
	for name, h := range bad {
		if p, _, err := i.OpenHint(alice, h); err == nil {
			t.Errorf("%s: OpenHint(%q) = %v, nil; want an error", name, h, p)
		}
	}
}
