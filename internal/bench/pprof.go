package bench

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var showingLine = regexp.MustCompile(`Showing nodes accounting for (\S+), ([0-9.]+)% of (\S+) total`)

// PprofShowing reads the "Showing nodes accounting for X, P% of T total"
// line of `go tool pprof -top` output. With -focus and every node shown
// (-nodecount large, -nodefraction=0), X is everything sampled under the
// focused functions and P its share of the profile. Quantities are in base
// units: bytes for memory profiles, seconds for CPU profiles.
func PprofShowing(out string) (amount, pct, total float64, err error) {
	m := showingLine.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, 0, fmt.Errorf("no \"Showing nodes accounting for\" line in pprof output")
	}
	if amount, err = PprofQuantity(m[1]); err != nil {
		return 0, 0, 0, err
	}
	if pct, err = strconv.ParseFloat(m[2], 64); err != nil {
		return 0, 0, 0, fmt.Errorf("pprof percentage %q: %w", m[2], err)
	}
	if total, err = PprofQuantity(m[3]); err != nil {
		return 0, 0, 0, err
	}
	return amount, pct, total, nil
}

// pprof prints memory with binary multiples and time with these suffixes.
var pprofUnits = []struct {
	suffix string
	scale  float64
}{
	// Longest suffixes first, so that "ms" is not read as "s".
	{"mins", 60}, {"hrs", 3600}, {"ns", 1e-9}, {"us", 1e-6}, {"µs", 1e-6}, {"ms", 1e-3},
	{"kB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40}, {"B", 1}, {"s", 1},
}

// PprofQuantity parses a quantity as pprof prints it ("512.01kB", "1.50s",
// "150ms", "0") into base units (bytes or seconds).
func PprofQuantity(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	for _, u := range pprofUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("pprof quantity %q: %w", s, err)
			}
			return v * u.scale, nil
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("pprof quantity %q: unknown unit", s)
	}
	return v, nil
}
