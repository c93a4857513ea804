package metrics

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/megaws/megaws/server"
	"github.com/prometheus/client_golang/prometheus"
)

// fieldMetric is the metric that exports one field of server.Stats.
type fieldMetric struct {
	name  string // without the namespace
	typ   string // "counter" or "gauge"
	label string // a map's key or a slice's index; "" for a number
	// sumOf names the labelled field whose series add up to this one
	// (Stats.Panics is the sum of PanicsByCallback).
	sumOf string
}

// statsMetrics maps every field of server.Stats to its metric. The names are
// what dashboards query: change one only with a migration note. A field
// missing here fails TestEveryStatsFieldExported: export it in Collect and
// add its row.
var statsMetrics = map[string]fieldMetric{
	"Conns":             {name: "connections", typ: "gauge"},
	"Loops":             {name: "event_loops", typ: "gauge"},
	"Handshakes":        {name: "handshakes_accepted_total", typ: "counter"},
	"MessagesIn":        {name: "messages_received_total", typ: "counter"},
	"MessagesOut":       {name: "messages_sent_total", typ: "counter"},
	"BytesIn":           {name: "received_bytes_total", typ: "counter"},
	"BytesOut":          {name: "sent_bytes_total", typ: "counter"},
	"QueueDrops":        {name: "write_queue_drops_total", typ: "counter"},
	"BudgetDrops":       {name: "budget_drops_total", typ: "counter"},
	"ReadQueueDrops":    {name: "read_queue_drops_total", typ: "counter"},
	"RateLimited":       {name: "rate_limited_messages_total", typ: "counter"},
	"SnapshotsReplaced": {name: "snapshots_replaced_total", typ: "counter"},
	"PingsSent":         {name: "pings_sent_total", typ: "counter"},
	"PongsIn":           {name: "pongs_received_total", typ: "counter"},
	"ClosesAnswered":    {name: "close_handshakes_answered_total", typ: "counter"},
	"CloseTimeouts":     {name: "close_timeouts_total", typ: "counter"},
	"ClusterOut":        {name: "cluster_messages_sent_total", typ: "counter"},
	"ClusterIn":         {name: "cluster_messages_received_total", typ: "counter"},
	"ClusterDrops":      {name: "cluster_messages_dropped_total", typ: "counter"},
	"QueuedBytes":       {name: "queued_bytes", typ: "gauge"},
	"LoopLag":           {name: "loop_lag_seconds", typ: "gauge", label: "loop"},
	"LoopLagMax":        {name: "loop_lag_max_seconds", typ: "gauge", label: "loop"},
	"ReadPauses":        {name: "read_pauses_total", typ: "counter"},
	"Panics":            {name: "handler_panics_total", typ: "counter", sumOf: "PanicsByCallback"},
	"PanicsByCallback":  {name: "handler_panics_total", typ: "counter", label: "callback"},
	"FDShed":            {name: "fd_shed_total", typ: "counter"},
	"MemoryReleases":    {name: "memory_releases_total", typ: "counter"},
	"Rejected":          {name: "handshakes_rejected_total", typ: "counter", label: "status"},
	"HTTPServed":        {name: "http_served_total", typ: "counter", label: "status"},
	"CloseCodes":        {name: "closes_total", typ: "counter", label: "code"},
	"ProtocolErrors":    {name: "protocol_errors_total", typ: "counter", label: "kind"},
}

// fillStats gives every field of st a value of its own: field i holds
// 10*(i+1) (maps one entry of that value, under key "k<i>" or 100+i; slices
// two durations, 10*(i+1) and 10*(i+1)+1 ms), so a metric fed by the wrong
// field shows. A field of a kind it does not know fails the test: teach it.
func fillStats(t *testing.T, st *server.Stats) {
	v := reflect.ValueOf(st).Elem()
	for i := range v.NumField() {
		f, sf := v.Field(i), v.Type().Field(i)
		n := uint64(10 * (i + 1))
		switch f.Kind() {
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(n))
		case reflect.Uint64:
			f.SetUint(n)
		case reflect.Slice:
			if f.Type().Elem() != reflect.TypeFor[time.Duration]() {
				t.Fatalf("fillStats: Stats.%s is a %v", sf.Name, f.Type())
			}
			f.Set(reflect.ValueOf([]time.Duration{time.Duration(n) * time.Millisecond, time.Duration(n+1) * time.Millisecond}))
		case reflect.Map:
			k := reflect.New(f.Type().Key()).Elem()
			switch k.Kind() {
			case reflect.String:
				k.SetString("k" + strconv.Itoa(i))
			case reflect.Int, reflect.Uint16:
				setNum(k, 100+i)
			default:
				t.Fatalf("fillStats: Stats.%s is a %v", sf.Name, f.Type())
			}
			if f.Type().Elem().Kind() != reflect.Uint64 {
				t.Fatalf("fillStats: Stats.%s is a %v", sf.Name, f.Type())
			}
			m := reflect.MakeMap(f.Type())
			m.SetMapIndex(k, reflect.ValueOf(n).Convert(f.Type().Elem()))
			f.Set(m)
		default:
			t.Fatalf("fillStats: Stats.%s is a %v", sf.Name, f.Type())
		}
	}
	for field, fm := range statsMetrics {
		if fm.sumOf == "" {
			continue
		}
		var sum uint64
		for it := v.FieldByName(fm.sumOf).MapRange(); it.Next(); {
			sum += it.Value().Uint()
		}
		v.FieldByName(field).SetUint(sum)
	}
}

func setNum(k reflect.Value, n int) {
	if k.CanInt() {
		k.SetInt(int64(n))
	} else {
		k.SetUint(uint64(n))
	}
}

// TestEveryStatsFieldExported fails when server.Stats gains a field that no
// metric exports, and checks that each metric carries its own field's value,
// under the name, type and label of statsMetrics.
func TestEveryStatsFieldExported(t *testing.T) {
	fields := map[string]bool{}
	for _, sf := range reflect.VisibleFields(reflect.TypeFor[server.Stats]()) {
		fields[sf.Name] = true
		if _, ok := statsMetrics[sf.Name]; !ok {
			t.Errorf("server.Stats.%s has no metric: export it in Collector.Collect and add it to statsMetrics", sf.Name)
		}
	}
	for field := range statsMetrics {
		if !fields[field] {
			t.Errorf("statsMetrics maps %s, which server.Stats no longer has", field)
		}
	}

	var st server.Stats
	fillStats(t, &st)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newCollector(func() server.Stats { return st }))
	samples, types := gather(t, reg)

	v := reflect.ValueOf(st)
	described := map[string]bool{}
	for field, fm := range statsMetrics {
		name := "megaws_" + fm.name
		described[name] = true
		if types[name] != fm.typ {
			t.Errorf("%s (Stats.%s) is a %q, want a %s", name, field, types[name], fm.typ)
		}
		f := v.FieldByName(field)
		if !f.IsValid() {
			continue
		}
		want := map[string]float64{} // sample → value
		switch {
		case fm.sumOf != "":
			var sum float64
			for k, x := range samples {
				if strings.HasPrefix(k, name+"{") {
					sum += x
				}
			}
			if sum != float64(f.Uint()) {
				t.Errorf("sum(%s) = %v, want Stats.%s = %d", name, sum, field, f.Uint())
			}
		case f.Kind() == reflect.Map:
			for it := f.MapRange(); it.Next(); {
				want[sample(name, fm.label, it.Key().Interface())] = float64(it.Value().Uint())
			}
		case f.Kind() == reflect.Slice:
			for i, d := range f.Interface().([]time.Duration) {
				want[sample(name, fm.label, i)] = d.Seconds()
			}
		case f.CanInt():
			want[name] = float64(f.Int())
		default:
			want[name] = float64(f.Uint())
		}
		for k, x := range want {
			if got, ok := samples[k]; !ok || got != x {
				t.Errorf("%s = %v (present %v), want %v from Stats.%s", k, got, ok, x, field)
			}
		}
	}
	for name := range types {
		if !described[name] {
			t.Errorf("metric %s exports no field of server.Stats (missing from statsMetrics?)", name)
		}
	}
}

// sample is a sample's key as gather prints it, for one label.
func sample(name, label string, value any) string {
	return name + "{" + label + "=" + strconv.Quote(toString(value)) + "}"
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	default:
		return strconv.FormatInt(reflect.ValueOf(v).Convert(reflect.TypeFor[int64]()).Int(), 10)
	}
}

func TestKindLabel(t *testing.T) {
	for _, tc := range []struct{ reason, want string }{
		{reason: "client frame is not masked", want: "client_frame_is_not_masked"},
		{reason: "invalid UTF-8 in text message", want: "invalid_utf_8_in_text_message"},
		{reason: "  control frame > 125 bytes ", want: "control_frame_125_bytes"},
		{reason: "RSV1 set without permessage-deflate", want: "rsv1_set_without_permessage_deflate"},
		{reason: "", want: ""},
	} {
		if got := kindLabel(tc.reason); got != tc.want {
			t.Errorf("kindLabel(%q) = %q, want %q", tc.reason, got, tc.want)
		}
	}
}

// TestOptions: the namespace and constant labels reach every metric, the
// caller's label map is copied, and labels that clash are refused at
// registration.
func TestOptions(t *testing.T) {
	st := server.Stats{Loops: 2, LoopLag: []time.Duration{time.Second}, LoopLagMax: []time.Duration{time.Second}}
	stats := func() server.Stats { return st }
	labels := prometheus.Labels{"node": "eu-1"}
	c := newCollector(stats, WithNamespace("game"), WithConstLabels(labels))
	labels["node"] = "changed"
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	samples, _ := gather(t, reg)
	for k, want := range map[string]float64{
		`game_event_loops{node="eu-1"}`:                   2,
		`game_loop_lag_seconds{loop="0",node="eu-1"}`:     1,
		`game_handshakes_accepted_total{node="eu-1"}`:     0,
		`game_cluster_messages_sent_total{node="eu-1"}`:   0,
		`game_loop_lag_max_seconds{loop="0",node="eu-1"}`: 1,
	} {
		if got, ok := samples[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	for k := range samples {
		if !strings.HasPrefix(k, "game_") || !strings.Contains(k, `node="eu-1"`) {
			t.Errorf("sample %s lacks the namespace or the constant label", k)
		}
	}

	bare := prometheus.NewPedanticRegistry()
	bare.MustRegister(newCollector(stats, WithNamespace("")))
	if samples, _ := gather(t, bare); samples["event_loops"] != 2 {
		t.Errorf("WithNamespace(\"\"): samples %v, want event_loops 2", samples)
	}

	if err := prometheus.NewRegistry().Register(newCollector(stats, WithConstLabels(prometheus.Labels{"server": "a"}))); err != nil {
		t.Fatalf("register: %v", err)
	}
	two := prometheus.NewRegistry()
	two.MustRegister(newCollector(stats))
	if err := two.Register(newCollector(stats)); err == nil {
		t.Errorf("a second identical collector was registered: want a duplicate error")
	}
	two = prometheus.NewPedanticRegistry()
	two.MustRegister(newCollector(stats, WithConstLabels(prometheus.Labels{"server": "a"})))
	if err := two.Register(newCollector(stats, WithConstLabels(prometheus.Labels{"server": "b"}))); err != nil {
		t.Errorf("a second server's collector with its own value of the constant label: %v", err)
	}
	if samples, _ := gather(t, two); samples[`megaws_event_loops{server="a"}`] != 2 || samples[`megaws_event_loops{server="b"}`] != 2 {
		t.Errorf("two servers in one registry: samples %v", samples)
	}
	if err := prometheus.NewRegistry().Register(newCollector(stats, WithConstLabels(prometheus.Labels{"loop": "x"}))); err == nil {
		t.Errorf("a constant label named loop was accepted: want an error")
	}
}
