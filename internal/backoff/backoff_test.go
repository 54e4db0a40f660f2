package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelayDoublesWithinJitterAndCaps(t *testing.T) {
	for n, full := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 10: time.Second} {
		for range 100 {
			d := Delay(100*time.Millisecond, time.Second, n)
			if d < full/2 || d > full {
				t.Fatalf("retry %d: %s outside [%s, %s]", n, d, full/2, full)
			}
		}
	}
	if d := Delay(0, time.Second, 3); d != 0 {
		t.Fatalf("zero initial: %s", d)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context: %v", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
