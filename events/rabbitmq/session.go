package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// session is one connection with its consuming channel and its confirm-mode
// channel for dead letters. Deliveries belong to the session they came on.
type session struct {
	conn    *amqp.Connection
	consume *amqp.Channel
	dl      *amqp.Channel
	log     *slog.Logger

	closed    chan struct{} // closed when the connection or a channel dies
	closeOnce sync.Once
	err       atomic.Pointer[error]

	mu          sync.Mutex
	outstanding int  // handed out, not yet settled
	draining    bool // Close was called: tear down at zero
	tearOnce    sync.Once

	// Dead-letter publishes the broker could not route come back as
	// basic.return before their confirm. They are read only inline, after
	// a confirm: a reader goroutine could still be holding one when the
	// publisher looks. The buffer holds one return per message that can be
	// in flight (the prefetch), so amqp091's reader never blocks on it.
	returns  chan amqp.Return
	retMu    sync.Mutex
	returned map[string]amqp.Return
}

func newSession(conn *amqp.Connection, consume, dl *amqp.Channel, prefetch int, log *slog.Logger) *session {
	s := &session{conn: conn, consume: consume, dl: dl, log: log,
		closed: make(chan struct{}), returned: map[string]amqp.Return{}}
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	consumeClosed := consume.NotifyClose(make(chan *amqp.Error, 1))
	dlClosed := dl.NotifyClose(make(chan *amqp.Error, 1))
	s.returns = dl.NotifyReturn(make(chan amqp.Return, prefetch+64))
	go func() {
		var err *amqp.Error
		select {
		case err = <-connClosed:
		case err = <-consumeClosed:
		case err = <-dlClosed:
		}
		if err != nil {
			s.markDead(err)
		} else {
			s.markDead(errors.New("closed"))
		}
	}()
	return s
}

// takeReturn reports whether the publish with this id came back unroutable.
// Returns of other publishes are kept for their owners.
func (s *session) takeReturn(id string) (amqp.Return, bool) {
	s.retMu.Lock()
	defer s.retMu.Unlock()
drain:
	for {
		select {
		case r, ok := <-s.returns:
			if !ok {
				break drain
			}
			rid, _ := r.Headers[headerDeadLetterID].(string)
			if len(s.returned) >= 1024 { // owners that gave up never collect theirs
				clear(s.returned)
			}
			s.returned[rid] = r
		default:
			break drain
		}
	}
	r, ok := s.returned[id]
	delete(s.returned, id)
	return r, ok
}

func (s *session) markDead(err error) {
	s.closeOnce.Do(func() {
		s.err.Store(&err)
		close(s.closed)
	})
}

func (s *session) dead() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

func (s *session) cause() error {
	if e := s.err.Load(); e != nil {
		return *e
	}
	return nil
}

func (s *session) teardown() {
	s.tearOnce.Do(func() {
		s.markDead(errors.New("closed by the adapter"))
		if err := s.conn.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
			s.log.Debug("rabbitmq: closing connection", "error", err)
		}
	})
}

func (s *session) hold() {
	s.mu.Lock()
	s.outstanding++
	s.mu.Unlock()
}

func (s *session) release() {
	s.mu.Lock()
	s.outstanding--
	last := s.draining && s.outstanding == 0
	s.mu.Unlock()
	if last {
		s.teardown()
	}
}

// drain tears the session down now if nothing is outstanding, else when the
// last message is settled or grace ends. It returns the outstanding count.
func (s *session) drain(grace time.Duration) int {
	s.mu.Lock()
	s.draining = true
	n := s.outstanding
	s.mu.Unlock()
	if n == 0 {
		s.teardown()
	} else {
		time.AfterFunc(grace, s.teardown)
	}
	return n
}

// publishDeadLetter publishes on the confirm channel and waits for the
// broker's confirm. mandatory makes an unroutable message (dead-letter queue
// deleted) come back as a basic.return, which arrives before the confirm.
// When that happens the dead-letter topology is declared again, so that the
// next attempt succeeds.
func (s *session) publishDeadLetter(ctx context.Context, cfg SourceConfig, p amqp.Publishing) error {
	id := uuid.NewString()
	p.Headers[headerDeadLetterID] = id
	dc, err := s.dl.PublishWithDeferredConfirmWithContext(ctx, cfg.DeadLetterExchange(), "", true, false, p)
	if err != nil {
		return classify(err)
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return failure.Transient(fmt.Errorf("no publisher confirm: %w", err))
	}
	r, returned := s.takeReturn(id)
	switch {
	case returned:
		if err := declareDeadLetterTopology(s.dl, cfg); err != nil {
			s.log.Error("rabbitmq: declaring the dead-letter queue again failed", "error", err)
		} else {
			s.log.Warn("rabbitmq: the dead-letter queue was missing and has been declared again", "dead_letter_queue", cfg.DeadLetterQueue())
		}
		return failure.Transient(fmt.Errorf("broker could not route it (%d %s): the dead-letter queue was missing", r.ReplyCode, r.ReplyText))
	case !ok && s.dead():
		return failure.Transient(fmt.Errorf("connection lost before the publisher confirm: %w", s.cause()))
	case !ok:
		return failure.Transient(errors.New("broker nacked the publish"))
	}
	return nil
}
