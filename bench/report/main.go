// Command report turns the benchmark's raw runs (runs.tsv, one line per wrk
// run, written by bench/bench.sh) into docs/benchmarks.md and the grouped bar
// chart docs/benchmarks.png: medians over rounds, and each target's ratio to
// nginx in the same round. The chart uses only the standard image packages
// and golang.org/x/image/font/basicfont, so it needs no fonts and fetches
// nothing at run time.
//
//	go run ./report -runs runs.tsv -md docs/benchmarks.md -png docs/benchmarks.png \
//	    -machine "..." -command "make bench" -duration 10 -replicas 3 \
//	    -skip 'dlb=cmd/dlb does not exist yet' -attach 'nginx.conf=/tmp/x/nginx.conf' \
//	    -convergence /tmp/x/convergence
package main

import (
	"errors"
	"flag"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// pairs is a repeatable NAME=VALUE flag, kept in the order given.
type pairs [][2]string

func (p *pairs) String() string { return fmt.Sprint(*p) }

func (p *pairs) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("%q: want NAME=VALUE", s)
	}
	*p = append(*p, [2]string{name, value})
	return nil
}

type options struct {
	runs, md, png          string
	convergence            string // folder of the convergence measurement; "" when not run
	title, note            string
	machine, command, load string
	date                   string
	replicas, duration     int
	threads, workers       int
	h2Streams              int
	targets                []string
	skip, attach           pairs
}

func main() {
	var o options
	var targets string
	flag.StringVar(&o.runs, "runs", "", "runs.tsv written by bench.sh (required)")
	flag.StringVar(&o.md, "md", "benchmarks.md", "Markdown page to write")
	flag.StringVar(&o.png, "png", "benchmarks.png", "PNG chart to write (the page links it by its file name)")
	flag.StringVar(&o.title, "title", "dlb vs nginx vs HAProxy", "chart title")
	flag.StringVar(&o.note, "note", "", "a warning printed in bold under the page's title")
	flag.StringVar(&o.machine, "machine", "", "the machine line: CPUs, kernel, versions")
	flag.StringVar(&o.command, "command", "make bench", "the command that produced the runs")
	flag.StringVar(&o.load, "load", "", "load average before the run")
	flag.StringVar(&o.date, "date", time.Now().UTC().Format("2006-01-02 15:04 UTC"), "when the runs were made")
	flag.IntVar(&o.replicas, "replicas", 3, "backend containers")
	flag.IntVar(&o.duration, "duration", 10, "seconds per wrk run")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.IntVar(&o.h2Streams, "h2-streams", 10, "h2load -m: streams per connection of the -h2 rows")
	flag.IntVar(&o.workers, "workers", 2, "workers per proxy (nginx processes, HAProxy threads, dlb GOMAXPROCS)")
	flag.StringVar(&targets, "targets", "dlb,nginx,haproxy,direct", "comma-separated row and bar order")
	flag.Var(&o.skip, "skip", "TARGET=REASON for a target that was not measured (repeatable)")
	flag.StringVar(&o.convergence, "convergence", "", "folder where bench.sh left the convergence measurement (see convergence.go)")
	flag.Var(&o.attach, "attach", "TITLE=FILE to show in the settings section (repeatable)")
	flag.Parse()
	o.targets = strings.Split(targets, ",")
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.runs == "" {
		return errors.New("-runs RUNS.tsv is required")
	}
	f, err := os.Open(o.runs)
	if err != nil {
		return err
	}
	runs, err := parseRuns(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", o.runs, err)
	}
	rows := summarise(runs, o.targets)

	p := page{
		Date: o.date, Machine: o.machine, Command: o.command, Load: o.load, Note: o.note,
		Replicas: o.replicas, Duration: o.duration, Threads: o.threads, Workers: o.workers, H2Streams: o.h2Streams,
		Skipped: map[string]string{},
		Chart:   filepath.Base(o.png),
		Runs:    filepath.Base(o.runs),
	}
	for _, r := range runs {
		p.Rounds = max(p.Rounds, r.Round)
	}
	var measured, skipped []string
	for _, s := range o.skip {
		p.Skipped[s[0]] = s[1]
		skipped = append(skipped, s[0])
	}
	for _, t := range append(slices.Clone(o.targets), targetsOf(rows)...) {
		if slices.Contains(p.Targets, t) {
			continue
		}
		_, skip := p.Skipped[t]
		has := slices.ContainsFunc(rows, func(r Summary) bool { return r.Target == t })
		if skip || has {
			p.Targets = append(p.Targets, t)
		}
		if has && !skip {
			measured = append(measured, t)
		}
	}
	if o.convergence != "" {
		c, err := readConvergence(o.convergence)
		if err != nil {
			return fmt.Errorf("-convergence %s: %w", o.convergence, err)
		}
		p.Convergence = c
	}
	for _, a := range o.attach {
		body, err := os.ReadFile(a[1])
		if err != nil {
			return fmt.Errorf("-attach %s: %w", a[0], err)
		}
		p.Attachments = append(p.Attachments, attachment{Title: a[0], Body: string(body)})
	}

	c := &chart{
		title:    o.title,
		subtitle: subtitle(o, p.Rounds),
		rows:     rows,
		targets:  measured,
		skipped:  skipped,
	}
	if err := writeFile(o.png, func(w *os.File) error { return png.Encode(w, c.render()) }); err != nil {
		return err
	}
	return writeFile(o.md, func(w *os.File) error { return writeMarkdown(w, p, rows) })
}

func targetsOf(rows []Summary) []string {
	var out []string
	for _, r := range rows {
		if !slices.Contains(out, r.Target) {
			out = append(out, r.Target)
		}
	}
	return out
}

func subtitle(o options, rounds int) string {
	s := fmt.Sprintf("%d backend replicas, wrk -t%d, median of %s x %d s", o.replicas, o.threads, plural(rounds, "round"), o.duration)
	if o.note != "" {
		s += " - " + o.note
	}
	return s
}

// writeFile writes through a temporary file, so a failed run never leaves a
// half-written page or chart in docs/.
func writeFile(path string, write func(*os.File) error) error {
	tmp := path + ".tmp"
	w, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := write(w); err != nil {
		w.Close()
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := w.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
