package maestrotest

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	ceclients "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/clients"
)

// The OCM SDK's reconnect backoff (clients.DelayFn): 5 s, growing 5x per
// call up to a 1 min cap, each with up to 100% jitter, starting over after
// 10 minutes without a call. Its state is one sequence per process.
const (
	sdkReconnectInitial = 5 * time.Second
	sdkReconnectFactor  = 5
	sdkReconnectCap     = time.Minute
	sdkReconnectJitter  = 1.0
	sdkReconnectReset   = 10 * time.Minute
	// outageWindow groups the calls of clients that lost the same
	// connection: they notice a restart within milliseconds of each other,
	// while one client's calls are at least 5 s apart.
	outageWindow = time.Second
)

// init makes the simulated agents reconnect after a Maestro restart as the
// real ones do. A real agent is a process of its own (deploy/local/maestro.sh
// agent) with a backoff sequence of its own: after a restart, each draws the
// next step of it. Measured with six real agents and a 2.5 s restart, all six
// were back 5.6-8.7 s after the disconnect; at a second restart within 10
// minutes, after 25-50 s. The simulated agents share one test process, and
// with the SDK's default one sequence: the k-th client to notice a restart
// waited the k-th step (5-10 s, 25-50 s, then 60-120 s each), so six
// consumers came back one by one at 10, 34, 63, 80, 84 and 113 s.
//
// Here every client that notices the same outage draws the same step, and
// the step advances per outage, as it would in a process per client.
//
// What stays different: a client whose retry fails (Maestro still down after
// 5-10 s) starts a new "outage" for every client that retries later, so in a
// long outage the simulated clients' delays grow faster than those of
// separate processes. The source clients of the test process draw from the
// same steps; the adapter runs one per process, which draws the same steps
// when it sees the same restarts. SetReconnectDelay (called from TestMain)
// replaces all this with a fixed delay.
//
// It is set in init so that no client is running when it is written.
func init() {
	ceclients.DelayFn = (&perProcessBackoff{now: time.Now}).next
}

// perProcessBackoff hands out the SDK's backoff steps per outage rather than
// per call.
type perProcessBackoff struct {
	now         func() time.Time
	mu          sync.Mutex
	step        int       // steps drawn since the last reset
	outageStart time.Time // first call of the current outage
	last        time.Time // last call
}

func (b *perProcessBackoff) next() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if now.Sub(b.last) > sdkReconnectReset {
		b.step = 0
	}
	b.last = now
	if b.step == 0 || now.Sub(b.outageStart) > outageWindow {
		b.step++
		b.outageStart = now
	}
	return wait.Jitter(reconnectStep(b.step), sdkReconnectJitter)
}

// reconnectStep is the SDK backoff's n-th delay (from 1) before jitter.
func reconnectStep(n int) time.Duration {
	d := sdkReconnectInitial
	for i := 1; i < n && d < sdkReconnectCap; i++ {
		d *= sdkReconnectFactor
	}
	return min(d, sdkReconnectCap)
}
