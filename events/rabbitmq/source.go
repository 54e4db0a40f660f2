package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
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
		return nil, events.Permanent(err)
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
	type opened struct {
		sess       *session
		deliveries <-chan amqp.Delivery
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = s.cfg.ReconnectInitial
	b.MaxInterval = s.cfg.ReconnectMax
	o, err := backoff.Retry(ctx, func() (opened, error) {
		sess, deliveries, err := s.open(ctx)
		if err != nil {
			s.lastErr.Store(&err)
			if initial && events.IsPermanent(err) {
				return opened{}, backoff.Permanent(err)
			}
			return opened{}, err
		}
		return opened{sess, deliveries}, nil
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, next time.Duration) {
		s.log.Warn("rabbitmq: connection attempt failed", "error", err, "retry_in", next)
	}))
	if err != nil {
		return nil, nil, err
	}
	s.current.Store(o.sess)
	s.sessions.Add(1)
	return o.sess, o.deliveries, nil
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
		return events.Transient(fmt.Errorf("no publisher confirm: %w", err))
	}
	r, returned := s.takeReturn(id)
	switch {
	case returned:
		if err := declareDeadLetterTopology(s.dl, cfg); err != nil {
			s.log.Error("rabbitmq: declaring the dead-letter queue again failed", "error", err)
		} else {
			s.log.Warn("rabbitmq: the dead-letter queue was missing and has been declared again", "dead_letter_queue", cfg.DeadLetterQueue())
		}
		return events.Transient(fmt.Errorf("broker could not route it (%d %s): the dead-letter queue was missing", r.ReplyCode, r.ReplyText))
	case !ok && s.dead():
		return events.Transient(fmt.Errorf("connection lost before the publisher confirm: %w", s.cause()))
	case !ok:
		return events.Transient(errors.New("broker nacked the publish"))
	}
	return nil
}

// settler settles one delivery; exactly one of its methods succeeds once.
type settler struct {
	s       *Source
	sess    *session
	d       amqp.Delivery
	key     string
	settled atomic.Bool
}

func (st *settler) claim(op string) error {
	if !st.settled.CompareAndSwap(false, true) {
		return fmt.Errorf("rabbitmq: %s of delivery %d: %w", op, st.d.DeliveryTag, ErrAlreadySettled)
	}
	return nil
}

func (st *settler) failed(op string, err error) error {
	if errors.Is(err, amqp.ErrClosed) || st.sess.dead() {
		return fmt.Errorf("rabbitmq: %s of delivery %d from queue %s: %w", op, st.d.DeliveryTag, st.s.cfg.Queue, ErrChannelClosed)
	}
	return classify(fmt.Errorf("rabbitmq: %s of delivery %d from queue %s: %w", op, st.d.DeliveryTag, st.s.cfg.Queue, err))
}

// Ack acknowledges the delivery.
func (st *settler) Ack(context.Context) error {
	if err := st.claim("ack"); err != nil {
		return err
	}
	defer st.sess.release()
	if st.sess.dead() {
		return st.failed("ack", amqp.ErrClosed)
	}
	if err := st.d.Ack(false); err != nil {
		return st.failed("ack", err)
	}
	st.s.attempts.Forget(st.key)
	return nil
}

// Requeue returns the delivery to the queue (basic.nack, requeue): the
// broker redelivers it at once, to this or another consumer. Any delay
// between attempts is the caller's to add before calling.
func (st *settler) Requeue(_ context.Context, reason string) error {
	if err := st.claim("requeue"); err != nil {
		return err
	}
	defer st.sess.release()
	if st.sess.dead() {
		return st.failed("requeue", amqp.ErrClosed)
	}
	if err := st.d.Nack(false, true); err != nil {
		return st.failed("requeue", err)
	}
	st.s.log.Debug("rabbitmq: requeued", "delivery", st.d.DeliveryTag, "reason", reason)
	return nil
}

// DeadLetter publishes the message to the dead-letter exchange, waits for
// the confirm, then acknowledges the original. If the publish fails nothing
// is acknowledged: the message is requeued after DeadLetterRetryDelay and
// the error says so.
func (st *settler) DeadLetter(ctx context.Context, reason string, attempts int) error {
	if err := st.claim("dead-letter"); err != nil {
		return err
	}
	if st.sess.dead() {
		st.sess.release()
		return st.failed("dead-letter", amqp.ErrClosed)
	}
	cfg := st.s.cfg
	d := &st.d
	headers := make(amqp.Table, len(d.Headers)+7)
	for k, v := range d.Headers {
		headers[k] = v
	}
	headers[HeaderDeadLetterReason] = truncateReason(reason)
	headers[HeaderAttempts] = strconv.Itoa(attempts)
	headers[HeaderOriginalExchange] = d.Exchange
	headers[HeaderOriginalRoutingKey] = d.RoutingKey
	headers[HeaderOriginalQueue] = cfg.Queue
	headers[HeaderDeadLetteredAt] = time.Now().UTC().Format(time.RFC3339Nano)
	// User-id is checked against the connection's user and expiration would
	// let the dead letter vanish: neither is carried over.
	p := amqp.Publishing{
		Headers:         headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
	if err := st.sess.publishDeadLetter(ctx, cfg, p); err != nil {
		sess, dd := st.sess, st.d
		time.AfterFunc(cfg.DeadLetterRetryDelay, func() {
			_ = dd.Nack(false, true)
			sess.release()
		})
		return events.Transient(fmt.Errorf("rabbitmq: dead-letter delivery %d to %s: %w; the message was not acknowledged and is requeued in %s",
			d.DeliveryTag, cfg.DeadLetterExchange(), err, cfg.DeadLetterRetryDelay))
	}
	defer st.sess.release()
	if err := d.Ack(false); err != nil {
		// The dead letter is stored; the original comes back and will be
		// dead-lettered again: a duplicate in the dead-letter queue, nothing
		// lost.
		return st.failed("ack after dead-lettering", err)
	}
	st.s.attempts.Forget(st.key)
	st.s.log.Info("rabbitmq: dead-lettered", "delivery", d.DeliveryTag, "dead_letter_queue", cfg.DeadLetterQueue(), "attempts", attempts, "reason", reason)
	return nil
}
