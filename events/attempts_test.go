package events

import "testing"

func TestAttemptCounter(t *testing.T) {
	a := NewAttemptCounter(3)
	if a.Seen("x") != 1 || a.Seen("x") != 2 {
		t.Fatal("counts do not grow")
	}
	a.Forget("x")
	if a.Seen("x") != 1 {
		t.Error("forget did not reset the count")
	}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		a.Seen(k)
	}
	if len(a.counts) > 3 {
		t.Errorf("counter holds %d entries, bound is 3", len(a.counts))
	}
	if a.counts["e"] != 1 {
		t.Error("the newest entry was evicted")
	}
}
