package lab

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"scalelab/reports"
)

// checkConsistency finds each kind of violation in a small history, and
// none in a clean one.
func TestCheckConsistency(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	v := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Microsecond) } // versions (updated_at)
	acked := func(client int, user, value string, begin, end int, version int) writeEvent {
		return writeEvent{client: client, user: user, value: value, begin: ms(begin), end: ms(end), acked: true, version: v(version)}
	}
	own := func(client int, user, value string, begin, end int, version int) readEvent {
		return readEvent{client: client, user: user, own: true, begin: ms(begin), end: ms(end), ok: true, value: value, version: v(version)}
	}
	anon := func(client int, user, value string, begin, end int) readEvent {
		return readEvent{client: client, user: user, begin: ms(begin), end: ms(end), ok: true, value: value}
	}
	tests := []struct {
		name      string
		perClient bool
		writes    []writeEvent
		reads     []readEvent
		finals    map[string]finalRead
		want      reports.Consistency
	}{
		{
			name:   "clean",
			writes: []writeEvent{acked(1, "u", "a", 0, 10, 1), acked(1, "u", "b", 20, 30, 2)},
			reads: []readEvent{own(1, "u", "a", 11, 12, 1), anon(2, "u", "seed", 5, 6), anon(2, "u", "a", 15, 16),
				own(1, "u", "b", 31, 32, 2), anon(2, "u", "b", 40, 41)},
			finals: map[string]finalRead{"u": {ok: true, value: "b", version: v(2)}},
			want: reports.Consistency{Writes: 2, OwnReads: 2, AnonymousReads: 3, FinalReads: 1,
				Staleness: reports.Staleness{Samples: 2}},
		},
		{
			name:   "a stale own read, an anonymous read 25 ms stale, a lost write",
			writes: []writeEvent{acked(1, "u", "a", 0, 10, 1), acked(1, "u", "b", 20, 30, 2)},
			reads:  []readEvent{own(1, "u", "b", 31, 32, 2), own(1, "u", "a", 40, 41, 1), anon(2, "u", "a", 55, 56)},
			finals: map[string]finalRead{"u": {ok: true, value: "a", version: v(1)}},
			want: reports.Consistency{Writes: 2, OwnReads: 2, AnonymousReads: 1, FinalReads: 1,
				ReadYourWrites: 1, Monotonic: 1, LostWrites: 1,
				Staleness: reports.Staleness{Samples: 2, P50: 0, P99: 25, Max: 25}},
		},
		{
			// Client 2 shares user u with client 1 and reads it after
			// client 1's write "b" was acknowledged, but sees "a": with
			// write hints the promise is per client, so that is no
			// violation; without them, it is one.
			name:      "another client's write, with hints",
			perClient: true,
			writes:    []writeEvent{acked(1, "u", "a", 0, 10, 1), acked(1, "u", "b", 20, 30, 2)},
			reads:     []readEvent{own(2, "u", "a", 31, 32, 1), own(1, "u", "b", 33, 34, 2)},
			finals:    map[string]finalRead{"u": {ok: true, value: "b", version: v(2)}},
			want:      reports.Consistency{Writes: 2, OwnReads: 2, FinalReads: 1},
		},
		{
			name:   "another client's write, without hints",
			writes: []writeEvent{acked(1, "u", "a", 0, 10, 1), acked(1, "u", "b", 20, 30, 2)},
			reads:  []readEvent{own(2, "u", "a", 31, 32, 1), own(1, "u", "b", 33, 34, 2)},
			finals: map[string]finalRead{"u": {ok: true, value: "b", version: v(2)}},
			want:   reports.Consistency{Writes: 2, OwnReads: 2, FinalReads: 1, ReadYourWrites: 1},
		},
		{
			name: "a write without an answer lands over a newer acknowledged one",
			writes: []writeEvent{{client: 1, user: "u", value: "late", begin: ms(0), end: ms(5000)},
				acked(2, "u", "b", 100, 110, 2)},
			finals: map[string]finalRead{"u": {ok: true, value: "late", version: v(3)}, "w": {}},
			want:   reports.Consistency{Writes: 1, Indeterminate: 1, FinalReads: 2, FinalReadFailures: 1, LateOverwrites: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory()
			h.writes, h.reads, h.perClient = tt.writes, tt.reads, tt.perClient
			got := checkConsistency(h, tt.finals, t0)
			if diff := cmp.Diff(tt.want, *got, cmpopts.IgnoreFields(reports.Consistency{}, "Examples")); diff != "" {
				t.Errorf("checkConsistency mismatch (-want +got):\n%s", diff)
			}
			violations := got.ReadYourWrites + got.Monotonic + got.LostWrites + got.LateOverwrites + got.FinalReadFailures
			if int64(len(got.Examples)) != violations {
				t.Errorf("%d examples for %d violations: %q", len(got.Examples), violations, got.Examples)
			}
		})
	}
}
