package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/recording"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
)

// recordCmd subscribes with its own subscription id (so it takes nothing
// from the adapters' consumer group) and appends every event, with the
// resource snapshot when the API is reachable, as a JSONL line that
// `adapter replay` reads. A message is acknowledged once its line is
// written and synced.
func recordCmd(args []string, stdout, stderr io.Writer) int {
	var out, subscription *string
	var maxEvents *int
	var withStatuses *bool
	cfg, _, code, ok := setup("record", "record [flags]", args, stdout, stderr, func(fs *flag.FlagSet) {
		out = fs.String("out", "-", "recording file to append to, - for stdout")
		subscription = fs.String("subscription-id", os.Getenv("RECORD_SUBSCRIPTION_ID"), "subscription id of the recorder (env RECORD_SUBSCRIPTION_ID; default <adapter subscription>-recorder)")
		maxEvents = fs.Int("max", 0, "stop after this many events (0: until SIGTERM)")
		withStatuses = fs.Bool("statuses", false, "also record the adapters' status reports on the resource and its cluster (GET href/statuses), for preconditions that name statuses or cluster_statuses")
	})
	if !ok {
		return code
	}
	if cfg.AdapterType == "" {
		cfg.AdapterType = "record" // Validate wants one; the recorder builds nothing
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "adapter record:", err)
		return exitUsage
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "adapter record:", err)
		return exitUsage
	}
	sub := *subscription
	if sub == "" {
		sub = "recorder"
		if id := os.Getenv("HYPERFLEET_BROKER_SUBSCRIPTION_ID"); id != "" {
			sub = id + "-recorder"
		} else if id := os.Getenv("BROKER_SUBSCRIPTION_ID"); id != "" {
			sub = id + "-recorder"
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	sp, err := planSource(cfg, sub)
	if err != nil {
		fmt.Fprintln(stderr, "adapter record:", err)
		return exitUsage
	}
	var source events.Source
	if sp.broker != nil {
		brk, err := connectBroker(ctx, *sp.broker, log)
		if err != nil {
			fmt.Fprintln(stderr, "adapter record:", err)
			return exitFailed
		}
		defer brk.Close()
		bs, err := brk.source(ctx, cfg.Concurrency, 0)
		if err != nil {
			fmt.Fprintln(stderr, "adapter record:", err)
			return exitFailed
		}
		defer bs.Close()
		source = bs
	} else {
		source = recording.NewSource(sp.recordings)
	}
	var reader hyperfleet.ResourceReader
	if cfg.APIURL != "" || cfg.APIDir != "" {
		if reader, err = resourceReader(cfg, log); err != nil {
			fmt.Fprintln(stderr, "adapter record:", err)
			return exitUsage
		}
	}
	w, closeOut, err := openStatusOut(*out, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "adapter record: --out:", err)
		return exitUsage
	}
	defer closeOut()
	rec := recording.NewWriter(w)
	decoder := events.NewDecoder(cfg.EventKinds...)

	n := 0
	for *maxEvents == 0 || n < *maxEvents {
		msg, err := source.Receive(ctx)
		if errors.Is(err, io.EOF) || ctx.Err() != nil {
			break
		}
		if err != nil {
			fmt.Fprintln(stderr, "adapter record:", err)
			return exitFailed
		}
		entry, err := snapshotEntry(ctx, msg, decoder, reader, *withStatuses)
		if err != nil {
			log.Warn("recording the event without a snapshot", "transport_id", msg.TransportID, "err", err)
		}
		if err := rec.Write(entry); err != nil {
			_ = msg.Settler.Requeue(context.WithoutCancel(ctx), "recording not written")
			fmt.Fprintln(stderr, "adapter record: write:", err)
			return exitFailed
		}
		if err := msg.Settler.Ack(context.WithoutCancel(ctx)); err != nil {
			log.Warn("could not ack a recorded message; it may be recorded twice", "err", err)
		}
		n++
	}
	fmt.Fprintf(stderr, "record: %d events written\n", n)
	return exitOK
}

// snapshotEntry turns a message into a recording entry: the event in
// structured form, and the resource (and a node pool's cluster) as the API
// returns them now. An event that does not decode is still recorded, as
// it came, so that a replay reproduces the rejection.
func snapshotEntry(ctx context.Context, msg *events.Message, decoder *events.Decoder, reader hyperfleet.ResourceReader, withStatuses bool) (recording.Entry, error) {
	doc, err := events.Structured(msg)
	if err != nil {
		return recording.Entry{Event: msg.Body}, err
	}
	entry := recording.Entry{Event: doc}
	if reader == nil {
		return entry, nil
	}
	ev, err := decoder.Decode(msg)
	if err != nil {
		return entry, nil
	}
	res, err := reader.GetResource(ctx, ev.Href)
	if err != nil {
		return entry, err
	}
	if entry.Resource, err = jsonOf(res); err != nil {
		return entry, err
	}
	if entry.Statuses, err = recordStatuses(ctx, reader, res.Href, withStatuses); err != nil {
		return entry, err
	}
	if owner := res.OwnerReferences; owner != nil && owner.Href != "" {
		cluster, err := reader.GetResource(ctx, owner.Href)
		if err != nil {
			return entry, err
		}
		if entry.Cluster, err = jsonOf(cluster); err != nil {
			return entry, err
		}
		entry.ClusterStatuses, err = recordStatuses(ctx, reader, cluster.Href, withStatuses)
		return entry, err
	}
	return entry, nil
}

// recordStatuses reads the status reports on the resource at href, as a
// JSON array, when asked to and the reader serves them.
func recordStatuses(ctx context.Context, reader hyperfleet.ResourceReader, href string, want bool) (json.RawMessage, error) {
	sr, ok := reader.(hyperfleet.StatusReader)
	if !want || !ok {
		return nil, nil
	}
	items, err := sr.GetStatuses(ctx, href)
	if err != nil {
		return nil, err
	}
	if items == nil {
		items = []json.RawMessage{}
	}
	return jsonOf(items)
}
