package postgres

import (
	"testing"
	"time"

	"scalelab/server"
)

func TestLSNHistoryLag(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var h lsnHistory
	if lag, bytes := h.lag(100, at(0)); lag != 0 || bytes != 0 {
		t.Errorf("lag before any primary sample = %v, %d, want 0, 0", lag, bytes)
	}
	// The primary: idle at 1000 from 0 to 100 ms, then writing 10 bytes a
	// millisecond until 300 ms, then idle at 3000.
	h.add(1000, at(0))
	h.add(1000, at(100))
	h.add(2000, at(200))
	h.add(3000, at(300))
	h.add(3000, at(400))
	h.add(3000, at(500))
	tests := []struct {
		replay server.Position
		now    int // ms
		lag    time.Duration
		bytes  int64
	}{
		{3000, 500, 0, 0},                         // caught up
		{3500, 500, 0, 0},                         // ahead of the last sample
		{2000, 500, 300 * time.Millisecond, 1000}, // the primary passed 2000 at 200 ms
		{1500, 500, 350 * time.Millisecond, 1500}, // interpolated between 100 and 200 ms
		{1000, 500, 400 * time.Millisecond, 2000}, // last seen at 1000 at 100 ms
		{1000, 900, 800 * time.Millisecond, 2000}, // grows with time while the primary is idle
		{500, 500, 500 * time.Millisecond, 2500},  // older than the history: a lower bound
		{2500, 250, 0, 500},                       // never negative
	}
	for _, tt := range tests {
		lag, bytes := h.lag(tt.replay, at(tt.now))
		if lag != tt.lag || bytes != tt.bytes {
			t.Errorf("lag(%v at %d ms) = %v, %d bytes, want %v, %d", tt.replay, tt.now, lag, bytes, tt.lag, tt.bytes)
		}
	}
}

func TestLSNHistoryRing(t *testing.T) {
	t0 := time.Now()
	var h lsnHistory
	for i := range historySize + 10 {
		h.add(server.Position(1000+i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if h.n != historySize {
		t.Fatalf("history holds %d entries, want %d", h.n, historySize)
	}
	// Entry 10 (position 1010) is now the oldest.
	now := t0.Add(time.Duration(historySize+10) * time.Millisecond)
	if lag, _ := h.lag(1000, now); lag != time.Duration(historySize)*time.Millisecond {
		t.Errorf("lag of a position older than the ring = %v, want the lower bound %v", lag, time.Duration(historySize)*time.Millisecond)
	}
	if lag, _ := h.lag(1010+100, now); lag != time.Duration(historySize-100)*time.Millisecond {
		t.Errorf("lag inside the ring = %v, want %v", lag, time.Duration(historySize-100)*time.Millisecond)
	}
}

func TestRecordEnd(t *testing.T) {
	for _, tt := range []struct{ in, want server.Position }{
		{0x5000000 + 40, 0x5000000 + 40}, // after a segment's long header: left alone
		{0x5002000 + 24, 0x5002000},      // after a short page header
		{0x5002000 + 40, 0x5002000 + 40}, // may end a record's tail
		{0x5002000 + 48, 0x5002000 + 48},
		{0x5002000, 0x5002000},
	} {
		if got := recordEnd(tt.in); got != tt.want {
			t.Errorf("recordEnd(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestCursor(t *testing.T) {
	id := "01890a5d-ac96-774b-bcce-b302099a8057"
	for _, c := range []cursor{{id: id}, {id: id, pos: 0x16_B374D848}} {
		text := encodeCursor(c)
		got, err := decodeCursor(text)
		if err != nil || got != c {
			t.Errorf("decodeCursor(encodeCursor(%+v) = %q) = %+v, %v", c, text, got, err)
		}
	}
	if n := len(encodeCursor(cursor{id: id})); n != 22 {
		t.Errorf("a cursor without a position has %d characters, want 22 (as before replicas)", n)
	}
}
