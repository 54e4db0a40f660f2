package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/backoff"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// ErrClosed is what Receive returns once the Source is closed. It wraps
// io.EOF: for the pipeline a closed source is an exhausted one.
var ErrClosed = fmt.Errorf("rabbitmq source closed: %w", io.EOF)

// maxTrackedMessages bounds the attempt tracker.
const maxTrackedMessages = 10000

// Source consumes one queue of the HyperFleet topology. See the package
// documentation for the topology, dead-lettering and reconnection.
type Source struct {
	cfg      SourceConfig
	log      *slog.Logger
	tag      string
	attempts *events.AttemptCounter

	out     chan *events.Message
	ctx     context.Context // ends at Close
	cancel  context.CancelFunc
	stopped chan struct{} // closed once intake has stopped for good

	current  atomic.Pointer[session]
	lastErr  atomic.Pointer[error]
	sessions atomic.Uint64 // connections made, for tests and logs
}

var _ events.Source = (*Source)(nil)

// NewSource validates cfg, connects, declares the topology and starts
// consuming. Connection failures are retried with backoff until ctx ends;
// a refused declaration (PRECONDITION_FAILED: the queue or exchange exists
// with other settings) or refused credentials fail at once.
func NewSource(ctx context.Context, cfg SourceConfig) (*Source, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, failure.Permanent(err)
	}
	tag := cfg.ConsumerTag
	if tag == "" {
		tag = newConsumerTag()
	}
	s := &Source{
		cfg:      cfg,
		log:      cfg.Logger.With("queue", cfg.Queue, "exchange", cfg.Exchange),
		tag:      tag,
		attempts: events.NewAttemptCounter(maxTrackedMessages),
		out:      make(chan *events.Message),
		stopped:  make(chan struct{}),
	}
	sess, deliveries, err := s.connect(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq source %s: %w", cfg.Queue, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.log.Info("rabbitmq: consuming", "prefetch", cfg.Prefetch, "consumer_tag", tag)
	go s.run(sess, deliveries)
	return s, nil
}

// Receive returns the next message. It blocks across reconnections until a
// message arrives, ctx ends, or the Source is closed (ErrClosed).
func (s *Source) Receive(ctx context.Context) (*events.Message, error) {
	return events.Next(ctx, s.ctx.Done(), s.out, ErrClosed)
}

// Close stops intake: the consumer is cancelled and messages prefetched but
// not yet handed out are requeued. Messages already handed out can still be
// settled for ShutdownGrace; then the connection closes and the broker
// redelivers whatever is unsettled. Close returns once intake has stopped.
func (s *Source) Close() error {
	s.cancel()
	<-s.stopped
	return nil
}

// Ready reports whether the Source is connected and consuming, for
// readiness probes.
func (s *Source) Ready() error {
	select {
	case <-s.ctx.Done():
		return ErrClosed
	default:
	}
	if sess := s.current.Load(); sess != nil && !sess.dead() {
		return nil
	}
	if err := s.lastErr.Load(); err != nil {
		return fmt.Errorf("rabbitmq: not connected: %w", *err)
	}
	return errors.New("rabbitmq: not connected")
}

// connect opens a session, retrying with backoff until ctx ends. When
// initial, errors no retry can fix end the attempts at once; later (a
// reconnection) every error is retried, since giving up would leave the
// adapter silently idle.
func (s *Source) connect(ctx context.Context, initial bool) (*session, <-chan amqp.Delivery, error) {
	for attempt := 1; ; attempt++ {
		sess, deliveries, err := s.open(ctx)
		if err == nil {
			s.current.Store(sess)
			s.sessions.Add(1)
			return sess, deliveries, nil
		}
		s.lastErr.Store(&err)
		if initial && failure.IsPermanent(err) {
			return nil, nil, err
		}
		if ctx.Err() != nil {
			return nil, nil, context.Cause(ctx)
		}
		wait := backoff.Delay(s.cfg.ReconnectInitial, s.cfg.ReconnectMax, attempt)
		s.log.Warn("rabbitmq: connection attempt failed", "error", err, "retry_in", wait)
		if backoff.Sleep(ctx, wait) != nil {
			return nil, nil, context.Cause(ctx)
		}
	}
}

// open dials, declares and starts consuming: one session.
func (s *Source) open(ctx context.Context) (sess *session, deliveries <-chan amqp.Delivery, err error) {
	conn, err := dial(ctx, s.cfg.URL, s.cfg.ConnectionName, s.cfg.DialTimeout, s.cfg.Heartbeat)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			_ = conn.Close()
		}
	}()
	consume, err := conn.Channel()
	if err != nil {
		return nil, nil, classify(fmt.Errorf("open channel: %w", err))
	}
	if err := declareInputTopology(consume, s.cfg); err != nil {
		return nil, nil, err
	}
	if err := declareDeadLetterTopology(consume, s.cfg); err != nil {
		return nil, nil, err
	}
	if err := consume.Qos(s.cfg.Prefetch, s.cfg.PrefetchSize, false); err != nil {
		return nil, nil, classify(fmt.Errorf("set prefetch %d: %w", s.cfg.Prefetch, err))
	}
	dl, err := conn.Channel()
	if err != nil {
		return nil, nil, classify(fmt.Errorf("open dead-letter channel: %w", err))
	}
	if err := dl.Confirm(false); err != nil {
		return nil, nil, classify(fmt.Errorf("enable publisher confirms: %w", err))
	}
	sess = newSession(conn, consume, dl, s.cfg.Prefetch, s.log)
	// Same flags as watermill-amqp's consumer: manual ack, not exclusive.
	deliveries, err = consume.Consume(s.cfg.Queue, s.tag, false, false, false, false, nil)
	if err != nil {
		return nil, nil, classify(fmt.Errorf("consume from queue %q: %w", s.cfg.Queue, err))
	}
	return sess, deliveries, nil
}

type stopReason int

const (
	stopClosing stopReason = iota
	stopLost
)

// run forwards deliveries until Close, reconnecting whenever the session
// dies.
func (s *Source) run(sess *session, deliveries <-chan amqp.Delivery) {
	defer close(s.stopped)
	for {
		if s.pump(sess, deliveries) == stopClosing {
			s.stopIntake(sess, deliveries)
			return
		}
		err := sess.cause()
		s.log.Warn("rabbitmq: connection lost; reconnecting (unacked messages are redelivered by the broker)", "error", err)
		s.current.Store(nil)
		if err != nil {
			s.lastErr.Store(&err)
		}
		sess.teardown()
		var cerr error
		sess, deliveries, cerr = s.connect(s.ctx, false)
		if cerr != nil { // only when closing
			return
		}
		s.log.Info("rabbitmq: reconnected")
	}
}

func (s *Source) pump(sess *session, deliveries <-chan amqp.Delivery) stopReason {
	for {
		select {
		case <-s.ctx.Done():
			return stopClosing
		case <-sess.closed:
			return stopLost
		case d, ok := <-deliveries:
			if !ok {
				// The broker cancelled the consumer (queue deleted, node
				// stopping) or the channel closed: start over with a fresh
				// declaration. A closed channel's own cause, when known first,
				// is kept.
				sess.markDead(errors.New("consumer cancelled by the broker or channel closed"))
				return stopLost
			}
			m := s.message(sess, &d)
			sess.hold()
			select {
			case s.out <- m:
			case <-s.ctx.Done():
				_ = d.Nack(false, true)
				sess.release()
				return stopClosing
			case <-sess.closed:
				sess.release()
				return stopLost
			}
		}
	}
}

// stopIntake cancels the consumer, requeues what was prefetched but never
// handed out, and lets the session close once the handed-out messages are
// settled or the grace period ends.
func (s *Source) stopIntake(sess *session, deliveries <-chan amqp.Delivery) {
	s.current.Store(nil)
	if err := sess.consume.Cancel(s.tag, false); err != nil {
		// The channel is gone: the broker requeues everything anyway.
		sess.teardown()
		return
	}
	requeued := 0
	for d := range deliveries { // closed once the cancel is confirmed and the buffer drained
		if d.Nack(false, true) == nil {
			requeued++
		}
	}
	held := sess.drain(s.cfg.ShutdownGrace)
	s.log.Info("rabbitmq: intake stopped", "requeued_prefetched", requeued, "unsettled", held, "grace", s.cfg.ShutdownGrace)
}

func (s *Source) message(sess *session, d *amqp.Delivery) *events.Message {
	key := identity(d)
	id := key
	if len(id) > 64 {
		id = id[:64]
	}
	return &events.Message{
		TransportID: id + "/" + strconv.FormatUint(d.DeliveryTag, 10),
		Body:        d.Body,
		Attributes:  attributes(d),
		Attempt:     attempt(d, s.attempts.Seen(key)),
		ReceivedAt:  time.Now(),
		Settler:     &settler{s: s, sess: sess, d: *d, key: key},
	}
}
