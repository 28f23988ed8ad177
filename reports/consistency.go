package reports

import (
	"fmt"
	"strconv"
)

// consistencySection renders the check of the clients' histories: what
// was checked, each guarantee with its count of violations, and the
// anonymous staleness.
func consistencySection(r *Result) section {
	k := r.Consistency
	n := func(v int64) string { return groupDigits(v) }
	verdict := func(v int64) string {
		if v == 0 {
			return "held"
		}
		return "VIOLATED"
	}
	tb := &table{head: []string{"check", "violations", "verdict"}, num: []bool{false, true, false}}
	row := func(name string, v int64) {
		tb.rows = append(tb.rows, []cell{c(name), c(n(v)), c(verdict(v))})
	}
	row("read-your-writes (own reads)", k.ReadYourWrites)
	row("monotonic reads (own reads)", k.Monotonic)
	row("lost acknowledged writes", k.LostWrites)
	row("late overwrites (an unanswered write landing over newer ones)", k.LateOverwrites)
	row("final reads that failed", k.FinalReadFailures)
	tb.rows = append(tb.rows, []cell{c("monotonic reads (anonymous; not promised, for information)"), c(n(k.AnonymousMonotonic)), c("—")})

	text := fmt.Sprintf("Every client's history was recorded and checked after the run: %s acknowledged writes "+
		"(%s more whose answer was lost: applied or not), %s own reads and %s anonymous reads (%s of them failed), "+
		"and a final read of each of the %s users written.",
		n(k.Writes), n(k.Indeterminate), n(k.OwnReads), n(k.AnonymousReads), n(k.FailedReads), n(k.FinalReads))
	s := section{title: "Consistency", text: text, table: tb}
	st := k.Staleness
	if st.Samples > 0 {
		s.after = fmt.Sprintf("Anonymous staleness (how long after a write was acknowledged an anonymous read could still show an older value), "+
			"over %s writes followed by anonymous reads of their user: p50 %s ms, p99 %s ms, max %s ms.",
			n(st.Samples), msText(st.P50), msText(st.P99), msText(st.Max))
	} else {
		s.after = "No anonymous read followed an acknowledged write of its user: anonymous staleness was not measured."
	}
	s.items = k.Examples
	return s
}

func msText(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
