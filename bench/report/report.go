// Package report turns benchmark runs into a JSON file with every raw
// figure and a Markdown report with tables and SVG charts (gonum/plot).
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/megaws/megaws/bench/scenario"
)

// Meta describes how a report was made.
type Meta struct {
	Title            string            `json:"title"`
	Date             string            `json:"date"`
	Command          string            `json:"command"`
	Machine          scenario.Machine  `json:"machine"`
	GoVersion        string            `json:"go_version"`
	Commit           string            `json:"commit,omitempty"`
	ServerGOMAXPROCS int               `json:"server_gomaxprocs"` // 0: Go's default (CPU count)
	LoadGOMAXPROCS   int               `json:"load_gomaxprocs"`
	ServerCPUs       []int             `json:"server_cpus,omitempty"`
	LoadCPUs         []int             `json:"load_cpus,omitempty"`
	Workers          int               `json:"megaws_workers"`
	MegawsArgs       []string          `json:"megaws_args"` // [] when megaws ran with its defaults
	Repetitions      int               `json:"repetitions"`
	Targets          []scenario.Target `json:"targets"`
	Notes            []string          `json:"notes,omitempty"`
	Seconds          float64           `json:"seconds"`
	LoadAvgBefore    string            `json:"loadavg_before"` // /proc/loadavg when the run started
	LoadAvgAfter     string            `json:"loadavg_after"`
}

// Run is one scenario run against one target.
type Run struct {
	Target    string                    `json:"target"`
	Rep       int                       `json:"rep"`
	Scenario  string                    `json:"scenario"`
	Idle      *scenario.IdleResult      `json:"idle,omitempty"`
	Echo      *scenario.EchoResult      `json:"echo,omitempty"`
	Broadcast *scenario.BroadcastResult `json:"broadcast,omitempty"`
	Connect   *scenario.ConnectResult   `json:"connect,omitempty"`
	Churn     *scenario.ChurnResult     `json:"churn,omitempty"`
	// SlowReaders is a slowreaders run.
	SlowReaders *scenario.SlowReadersResult `json:"slowreaders,omitempty"`
	Compress    *scenario.CompressResult    `json:"compress,omitempty"`
	Cluster     *scenario.ClusterResult     `json:"cluster,omitempty"`
	Error       string                      `json:"error,omitempty"`
}

// Report is a whole benchmark report.
type Report struct {
	Meta Meta  `json:"meta"`
	Runs []Run `json:"runs"`
}

// NewMeta fills in the date, machine, Go version and command line.
func NewMeta(title string, args []string) Meta {
	m := Meta{
		Title:     title,
		Date:      time.Now().UTC().Format(time.RFC3339),
		Command:   commandLine(args),
		Machine:   scenario.ReadMachine(),
		GoVersion: runtime.Version(),
	}
	m.LoadAvgBefore = LoadAvg()
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
			m.Commit += "+dirty"
		}
	}
	return m
}

// CommandEnv names the environment variable through which a wrapper script
// (scripts/bench.sh, scripts/c1m.sh) states the command a user typed.
const CommandEnv = "MEGAWS_BENCH_COMMAND"

func commandLine(args []string) string {
	if c := os.Getenv(CommandEnv); c != "" {
		return c
	}
	return strings.Join(args, " ")
}

// Read loads a report written by Write.
func Read(dir string) (*Report, error) {
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	r.upgradeIdle()
	return &r, nil
}

// LoadAvg returns the first three fields of /proc/loadavg: how busy the
// machine was apart from the benchmark.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// Failed returns the runs that ended in an error.
func (r *Report) Failed() []Run {
	var out []Run
	for _, x := range r.Runs {
		if x.Error != "" {
			out = append(out, x)
		}
	}
	return out
}

// Write writes report.json, report.md and the charts into dir.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	charts, err := r.Charts(dir)
	if err != nil {
		return fmt.Errorf("report: charts: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.Markdown(charts)), 0o644)
}
