package bench

import (
	"bufio"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Sample is one line of a Prometheus text exposition.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// ParseMetrics reads the Prometheus text format (what /metrics serves):
// comments are skipped, every other line is `name{labels} value [ts]`.
func ParseMetrics(text string) ([]Sample, error) {
	var out []Sample
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' {
			continue
		}
		s, err := parseSample(l)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d %q: %w", line, l, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

func parseSample(l string) (Sample, error) {
	s := Sample{Labels: map[string]string{}}
	i := strings.IndexAny(l, "{ ")
	if i <= 0 {
		return s, fmt.Errorf("no value")
	}
	s.Name = l[:i]
	rest := l[i:]
	if rest[0] == '{' {
		end, err := parseLabels(rest, s.Labels)
		if err != nil {
			return s, err
		}
		rest = rest[end:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, fmt.Errorf("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("value %q: %w", fields[0], err)
	}
	s.Value = v
	return s, nil
}

// parseLabels reads `{a="x",b="y"}` at the start of s into into and returns
// the index just past the closing brace. Values may hold \", \\ and \n.
func parseLabels(s string, into map[string]string) (int, error) {
	i := 1
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			return 0, fmt.Errorf("unterminated labels")
		}
		if s[i] == '}' {
			return i + 1, nil
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 || i+eq+1 >= len(s) || s[i+eq+1] != '"' {
			return 0, fmt.Errorf("malformed label at %q", s[i:])
		}
		name := strings.TrimSpace(s[i : i+eq])
		i += eq + 2
		var v strings.Builder
		for {
			if i >= len(s) {
				return 0, fmt.Errorf("unterminated label value of %s", name)
			}
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				switch s[i+1] {
				case 'n':
					v.WriteByte('\n')
				default:
					v.WriteByte(s[i+1])
				}
				i += 2
				continue
			}
			i++
			if c == '"' {
				break
			}
			v.WriteByte(c)
		}
		into[name] = v.String()
	}
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
