package bench

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Sample is one line of a Prometheus text exposition.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// ParseMetrics reads the Prometheus text format (what /metrics serves) with
// Prometheus's own parser and flattens it back into one Sample per line:
// a histogram's `_bucket` (with its `le` label), `_sum` and `_count`, a
// summary's quantiles, `_sum` and `_count`, as the text has them.
func ParseMetrics(text string) ([]Sample, error) {
	// common v0.67 wants the name validation scheme chosen (the zero
	// TextParser has none); UTF-8 accepts every name the server may send.
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	names := make([]string, 0, len(families))
	for name := range families {
		names = append(names, name)
	}
	sort.Strings(names) // a stable order; within a family the text's order is kept
	var out []Sample
	for _, name := range names {
		out = appendFamily(out, families[name])
	}
	return out, nil
}

// appendFamily appends the samples of one metric family.
func appendFamily(out []Sample, mf *dto.MetricFamily) []Sample {
	name := mf.GetName()
	for _, m := range mf.GetMetric() {
		labels := func(extra ...string) map[string]string {
			l := make(map[string]string, len(m.GetLabel())+1)
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(extra); i += 2 {
				l[extra[i]] = extra[i+1]
			}
			return l
		}
		switch {
		case m.GetHistogram() != nil:
			h := m.GetHistogram()
			for _, b := range h.GetBucket() {
				count := float64(b.GetCumulativeCount())
				if b.CumulativeCountFloat != nil {
					count = b.GetCumulativeCountFloat()
				}
				out = append(out, Sample{Name: name + "_bucket", Labels: labels(model.BucketLabel, formatBound(b.GetUpperBound())), Value: count})
			}
			if h.SampleSum != nil {
				out = append(out, Sample{Name: name + "_sum", Labels: labels(), Value: h.GetSampleSum()})
			}
			switch {
			case h.SampleCountFloat != nil:
				out = append(out, Sample{Name: name + "_count", Labels: labels(), Value: h.GetSampleCountFloat()})
			case h.SampleCount != nil:
				out = append(out, Sample{Name: name + "_count", Labels: labels(), Value: float64(h.GetSampleCount())})
			}
		case m.GetSummary() != nil:
			s := m.GetSummary()
			for _, q := range s.GetQuantile() {
				out = append(out, Sample{Name: name, Labels: labels(model.QuantileLabel, formatBound(q.GetQuantile())), Value: q.GetValue()})
			}
			if s.SampleSum != nil {
				out = append(out, Sample{Name: name + "_sum", Labels: labels(), Value: s.GetSampleSum()})
			}
			if s.SampleCount != nil {
				out = append(out, Sample{Name: name + "_count", Labels: labels(), Value: float64(s.GetSampleCount())})
			}
		case m.GetCounter() != nil:
			out = append(out, Sample{Name: name, Labels: labels(), Value: m.GetCounter().GetValue()})
		case m.GetGauge() != nil:
			out = append(out, Sample{Name: name, Labels: labels(), Value: m.GetGauge().GetValue()})
		default:
			out = append(out, Sample{Name: name, Labels: labels(), Value: m.GetUntyped().GetValue()})
		}
	}
	return out
}

// formatBound writes an le or quantile label back as Histogram reads it.
func formatBound(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func matches(s Sample, name string, labels map[string]string) bool {
	if s.Name != name {
		return false
	}
	for k, v := range labels {
		if s.Labels[k] != v {
			return false
		}
	}
	return true
}

// Value returns the first sample of name whose labels include labels.
func Value(samples []Sample, name string, labels map[string]string) (float64, bool) {
	for _, s := range samples {
		if matches(s, name, labels) {
			return s.Value, true
		}
	}
	return 0, false
}

// Bucket is one cumulative histogram bucket: Count observations <= UpperBound.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Histogram returns the cumulative buckets of histogram name (the
// name_bucket series) whose labels include labels, sorted by bound, +Inf
// last.
func Histogram(samples []Sample, name string, labels map[string]string) []Bucket {
	var out []Bucket
	for _, s := range samples {
		if !matches(s, name+"_bucket", labels) {
			continue
		}
		le, err := strconv.ParseFloat(s.Labels["le"], 64)
		if err != nil {
			continue
		}
		out = append(out, Bucket{UpperBound: le, Count: s.Value})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UpperBound < out[j].UpperBound })
	return out
}

// SubBuckets returns after - before, bucket by bucket: the observations
// made between two scrapes. Buckets must have the same bounds (the same
// histogram scraped twice); a bucket missing from before counts as 0.
func SubBuckets(after, before []Bucket) []Bucket {
	prev := map[float64]float64{}
	for _, b := range before {
		prev[b.UpperBound] = b.Count
	}
	out := make([]Bucket, len(after))
	for i, b := range after {
		out[i] = Bucket{UpperBound: b.UpperBound, Count: b.Count - prev[b.UpperBound]}
	}
	return out
}

// Quantile estimates the q-quantile (0..1) of cumulative buckets the way
// Prometheus's histogram_quantile does: find the bucket the rank falls in
// and interpolate linearly inside it. A rank in the +Inf bucket returns the
// highest finite bound. ok is false when there are no observations.
func Quantile(buckets []Bucket, q float64) (float64, bool) {
	if len(buckets) == 0 {
		return 0, false
	}
	total := buckets[len(buckets)-1].Count
	if total <= 0 {
		return 0, false
	}
	rank := q * total
	lowerBound, lowerCount := 0.0, 0.0
	for _, b := range buckets {
		if b.Count >= rank {
			if math.IsInf(b.UpperBound, 1) {
				return lowerBound, true
			}
			if b.Count == lowerCount {
				return b.UpperBound, true
			}
			return lowerBound + (b.UpperBound-lowerBound)*(rank-lowerCount)/(b.Count-lowerCount), true
		}
		lowerBound, lowerCount = b.UpperBound, b.Count
	}
	return lowerBound, true
}
