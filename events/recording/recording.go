// Package recording reads and writes recorded events: the files that
// `adapter replay` plays back and `adapter record` writes.
//
// A recording is a file holding one CloudEvent JSON document, a JSONL file
// with one entry per line, or a directory of these (read in name order). A
// JSONL entry is either a CloudEvent, or a snapshot line:
//
//	{"event": {...CloudEvent...}, "resource": {...API JSON...}, "cluster": {...API JSON...}}
//
// where resource (and, for node pools, the owning cluster) are the API
// objects as they were when the event was recorded; they win over reading
// the API during replay.
package recording

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
)

// Entry is one recorded event with its optional snapshots.
type Entry struct {
	Event    json.RawMessage `json:"event"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Cluster  json.RawMessage `json:"cluster,omitempty"`
	// Statuses and ClusterStatuses are the adapters' status reports on the
	// resource and its cluster (GET .../statuses: the API's list, or a bare
	// array), for preconditions that name them.
	Statuses        json.RawMessage `json:"statuses,omitempty"`
	ClusterStatuses json.RawMessage `json:"cluster_statuses,omitempty"`
}

// maxLine bounds one JSONL line; longer lines are read and then rejected by
// the decoder's size limit with a clear error, never silently split.
const maxLine = 16 << 20

// Load reads every entry under paths into messages, in order. A line that
// is not JSON still becomes a message (its body is the raw line) so that the
// pipeline rejects it with a reason and the rest of the run goes on; only
// I/O errors fail Load.
func Load(paths ...string) ([]*events.Message, error) {
	var msgs []*events.Message
	for _, p := range paths {
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			m, err := loadFile(f)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, m...)
		}
	}
	return msgs, nil
}

func expand(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("recording %s: %w", path, err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".json") || strings.HasSuffix(p, ".jsonl")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recording %s: %w", path, err)
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("recording %s: no .json or .jsonl files", path)
	}
	return files, nil
}

func loadFile(file string) ([]*events.Message, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("recording: %w", err)
	}
	if !strings.HasSuffix(file, ".jsonl") {
		// One JSON document, possibly pretty-printed over many lines.
		return []*events.Message{entryMessage(file, bytes.TrimSpace(data))}, nil
	}
	var msgs []*events.Message
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		msgs = append(msgs, entryMessage(fmt.Sprintf("%s:%d", file, n), append([]byte(nil), line...)))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("recording %s: %w", file, err)
	}
	return msgs, nil
}

// entryMessage turns one document into a message: a snapshot entry is
// unpacked, anything else is handed to the decoder as a raw body.
func entryMessage(origin string, doc []byte) *events.Message {
	m := &events.Message{TransportID: origin, Body: doc, Attempt: 1}
	var probe map[string]json.RawMessage
	if json.Unmarshal(doc, &probe) == nil {
		if ev, ok := probe["event"]; ok {
			if _, isCE := probe["specversion"]; !isCE {
				var e Entry
				if json.Unmarshal(doc, &e) == nil {
					m.Body, m.Snapshot, m.OwnerSnapshot = e.Event, nullToNil(e.Resource), nullToNil(e.Cluster)
					m.StatusesSnapshot, m.OwnerStatusesSnapshot = nullToNil(e.Statuses), nullToNil(e.ClusterStatuses)
				} else {
					m.Body = ev
				}
			}
		}
	}
	return m
}

func nullToNil(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

// Outcome is how the pipeline settled one recorded message.
type Outcome struct {
	TransportID string
	Settlement  string // "ack", "requeue" or "dead-letter"
	Reason      string
	Attempts    int
}

// Source replays loaded messages in order, then reports io.EOF. A message
// given back with Requeue is replayed again after the others, with its
// attempt count raised, so a replay behaves like a broker redelivery.
type Source struct {
	mu       sync.Mutex
	queue    []*events.Message
	outcomes []Outcome
	closed   bool
	// OnSettle, if set, is called for every settlement as it happens (the
	// replay command prints failures with it).
	OnSettle func(Outcome)
}

var _ events.Source = (*Source)(nil)

// NewSource replays msgs.
func NewSource(msgs []*events.Message) *Source {
	return &Source{queue: append([]*events.Message(nil), msgs...)}
}

// Receive implements events.Source.
func (s *Source) Receive(ctx context.Context) (*events.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.queue) == 0 {
		return nil, io.EOF
	}
	m := s.queue[0]
	s.queue = s.queue[1:]
	m.ReceivedAt = time.Now()
	m.Settler = &settler{src: s, msg: m}
	return m, nil
}

// Close implements events.Source.
func (s *Source) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// Outcomes returns every settlement so far, in order.
func (s *Source) Outcomes() []Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Outcome(nil), s.outcomes...)
}

func (s *Source) record(o Outcome, requeue *events.Message) {
	s.mu.Lock()
	s.outcomes = append(s.outcomes, o)
	if requeue != nil && !s.closed {
		requeue.Attempt++
		s.queue = append(s.queue, requeue)
	}
	cb := s.OnSettle
	s.mu.Unlock()
	if cb != nil {
		cb(o)
	}
}

type settler struct {
	src  *Source
	msg  *events.Message
	once sync.Once
}

func (st *settler) settle(o Outcome, requeue bool) error {
	done := false
	st.once.Do(func() {
		done = true
		var rq *events.Message
		if requeue {
			rq = st.msg
		}
		st.src.record(o, rq)
	})
	if !done {
		return fmt.Errorf("message %s settled twice", st.msg.TransportID)
	}
	return nil
}

func (st *settler) Ack(context.Context) error {
	return st.settle(Outcome{TransportID: st.msg.TransportID, Settlement: "ack", Attempts: st.msg.Attempt}, false)
}

func (st *settler) Requeue(_ context.Context, reason string) error {
	return st.settle(Outcome{TransportID: st.msg.TransportID, Settlement: "requeue", Reason: reason, Attempts: st.msg.Attempt}, true)
}

func (st *settler) DeadLetter(_ context.Context, reason string, attempts int) error {
	return st.settle(Outcome{TransportID: st.msg.TransportID, Settlement: "dead-letter", Reason: reason, Attempts: attempts}, false)
}

// Writer appends entries as JSONL (adapter record). Safe for concurrent use.
type Writer struct {
	mu sync.Mutex
	w  *bufio.Writer
	f  interface{ Sync() error }
}

// NewWriter writes to w; if w is a regular file (or anything else with
// Sync but no Stat), every entry is synced so a recording survives a crash
// of the recorder. A pipe or terminal (`adapter record --out -` piped on)
// has nothing to sync to: fsync on one fails with EINVAL.
func NewWriter(w io.Writer) *Writer {
	wr := &Writer{w: bufio.NewWriter(w)}
	if f, ok := w.(interface{ Sync() error }); ok {
		wr.f = f
	}
	if f, ok := w.(interface{ Stat() (os.FileInfo, error) }); ok {
		if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
			wr.f = nil
		}
	}
	return wr
}

// Write appends one entry.
func (w *Writer) Write(e Entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode recording entry: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.w.Write(append(line, '\n')); err != nil {
		return err
	}
	if err := w.w.Flush(); err != nil {
		return err
	}
	if w.f != nil {
		return w.f.Sync()
	}
	return nil
}
