package bench

import (
	"bufio"
	"strconv"
	"strings"
)

// GoBench is one result line of `go test -bench` output.
type GoBench struct {
	Package    string `json:"package"`
	Name       string `json:"name"`
	Iterations int64  `json:"iterations"`
	// Metrics by unit: ns/op, B/op, allocs/op, MB/s and custom ones
	// (events/s, msgs/s, p99-ms).
	Metrics map[string]float64 `json:"metrics"`
}

// ParseGoBench reads `go test -bench` output, possibly several packages
// concatenated; anything that is not a result line or a pkg: line is
// ignored. The -N GOMAXPROCS suffix stays in Name, as go test prints it.
func ParseGoBench(out string) []GoBench {
	var res []GoBench
	pkg := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		// name, iterations, then value-unit pairs.
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		b := GoBench{Package: pkg, Name: f[0], Iterations: n, Metrics: map[string]float64{}}
		ok := true
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				ok = false
				break
			}
			b.Metrics[f[i+1]] = v
		}
		if ok {
			res = append(res, b)
		}
	}
	return res
}

// FindGoBench returns the first result whose name, without the -N suffix,
// is name.
func FindGoBench(all []GoBench, name string) (GoBench, bool) {
	for _, b := range all {
		if trimProcs(b.Name) == name {
			return b, true
		}
	}
	return GoBench{}, false
}

// trimProcs drops go test's -GOMAXPROCS suffix: BenchmarkX/y-2 → BenchmarkX/y.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}
