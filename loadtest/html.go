package loadtest

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"os"
	"strings"
)

type series struct {
	Name  string
	Color string
	Pick  func(TimePoint) float64
}

// svgChart draws time series as an inline SVG line chart (no scripts, no
// external resources), with the drain phase shaded.
func svgChart(title, unit string, tl []TimePoint, ss []series) template.HTML {
	const w, h, left, right, top, bottom = 900.0, 260.0, 60.0, 20.0, 30.0, 30.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`, w, h, w, h, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="14" font-family="sans-serif">%s</text>`, left, template.HTMLEscapeString(title))
	if len(tl) == 0 {
		b.WriteString(`<text x="60" y="120" font-family="sans-serif">no samples</text></svg>`)
		return template.HTML(b.String())
	}
	maxT, maxY := tl[len(tl)-1].T, 0.0
	for _, tp := range tl {
		for _, s := range ss {
			maxY = math.Max(maxY, s.Pick(tp))
		}
	}
	if maxY <= 0 {
		maxY = 1
	}
	maxY = niceCeil(maxY)
	if maxT <= 0 {
		maxT = 1
	}
	x := func(t float64) float64 { return left + (w-left-right)*t/maxT }
	y := func(v float64) float64 { return h - bottom - (h-top-bottom)*v/maxY }
	// Shade the drain phase.
	for i, tp := range tl {
		if tp.Phase == "drain" {
			start := 0.0
			if i > 0 {
				start = tl[i-1].T
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#f3f3f3"/>`, x(start), top, x(maxT)-x(start), h-top-bottom)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" fill="#888" font-family="sans-serif">drain</text>`, x(start)+4, top+12)
			break
		}
	}
	for i := 0; i <= 4; i++ {
		v := maxY * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, left, w-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="11" text-anchor="end" font-family="sans-serif">%s</text>`, left-6, y(v)+4, fmtNum(v))
	}
	for i := 0; i <= 5; i++ {
		t := maxT * float64(i) / 5
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="11" text-anchor="middle" font-family="sans-serif">%.0fs</text>`, x(t), h-10, t)
	}
	fmt.Fprintf(&b, `<text x="12" y="%.0f" font-size="11" font-family="sans-serif" transform="rotate(-90 12 %.0f)">%s</text>`, h/2, h/2, template.HTMLEscapeString(unit))
	for si, s := range ss {
		var pts []string
		for _, tp := range tl {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(tp.T), y(s.Pick(tp))))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"/>`, s.Color, strings.Join(pts, " "))
		lx := left + 10 + float64(si)*170
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="12" height="3" fill="%s"/><text x="%.0f" y="%.0f" font-size="11" font-family="sans-serif">%s</text>`,
			lx+220, 12.0, s.Color, lx+236, 17.0, template.HTMLEscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func fmtNum(v float64) string {
	if v >= 100 || v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

var htmlTmpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>koppelpoort load report</title>
<style>body{font-family:sans-serif;margin:2em;max-width:960px}table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #eee}td:first-child,th:first-child{text-align:left}.pass{color:#070}.fail{color:#b00}</style>
</head><body>
<h1>koppelpoort load — <span class="{{if .R.Pass}}pass">PASS{{else}}fail">FAIL{{end}}</span></h1>
<p>{{.R.Started.Format "2006-01-02 15:04:05 MST"}} · target {{.R.Target}}{{if .R.Store}} · {{.R.Store}}{{end}}<br>
{{.R.Domains}} domains, {{.R.Instances}} instances, format {{.R.Scenario.Format}}, {{if gt .R.Scenario.Rate 0.0}}open loop {{printf "%.0f" .R.Scenario.Rate}} msg/s{{else}}closed loop, {{.R.Scenario.Concurrency}} workers{{end}}; load {{printf "%.1f" .R.LoadSeconds}}s, drain {{printf "%.1f" .R.DrainSeconds}}s</p>
<p><b>posted {{printf "%.0f" .R.PostedPerSecond}} msg/s</b>, delivered {{printf "%.0f" .R.DeliveredPerSecond}}/s{{if .R.CommitRate}}; raw commit rate {{printf "%.0f" .R.CommitRate.PerSecond}}/s → ratio {{printf "%.2f" .R.CommitRatio}}{{end}}{{if .R.Server}}; server RSS peak {{printf "%.0f" .R.Server.MaxRSSMiB}} MiB{{end}}</p>
{{.Throughput}}
{{.Latency}}
{{if .Memory}}{{.Memory}}{{end}}
<h2>Operations</h2>
<table><tr><th>operation</th><th>count</th><th>errors</th><th>/s</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>
{{range .R.Ops}}<tr><td>{{.Name}}</td><td>{{.Count}}</td><td>{{.Errors}}</td><td>{{printf "%.0f" .Rate}}</td><td>{{printf "%.1f" .P50}}</td><td>{{printf "%.1f" .P90}}</td><td>{{printf "%.1f" .P99}}</td><td>{{printf "%.1f" .Max}}</td></tr>
{{end}}</table>
{{if .R.Errors}}<h2>Errors</h2><table><tr><th>kind</th><th>count</th></tr>{{range .R.Errors}}<tr><td>{{.Kind}}</td><td>{{.Count}}</td></tr>{{end}}</table>{{end}}
<h2>Consistency</h2>
{{with .R.Consistency}}<table>
<tr><td>posted / accepted / rejected / unknown outcome</td><td>{{.Posted}} / {{.Accepted}} / {{.Rejected}} / {{.Unknown}}</td></tr>
<tr><td>deliveries / expected</td><td>{{.Deliveries}} / {{.ExpectedDeliveries}}</td></tr>
<tr><td>missing / duplicates / superseded</td><td>{{.Missing}} / {{.Duplicates}} / {{.Superseded}}</td></tr>
<tr><td>rejected but delivered / wrong recipient / strays</td><td>{{.RejectedButDelivered}} / {{.WrongRecipient}} / {{.Strays}}</td></tr>
<tr><td>acks verified / not stuck / still queued</td><td>{{.AcksChecked}} / {{.AcksNotStuck}} / {{.StillQueued}}</td></tr>
</table>{{range .Examples}}<p>! {{.}}</p>{{end}}{{end}}
</body></html>
`))

// WriteHTML writes a self-contained HTML page with charts of throughput,
// latency and server memory over time.
func (rep *Report) WriteHTML(path string) error {
	data := struct {
		R                           *Report
		Throughput, Latency, Memory template.HTML
	}{R: rep}
	data.Throughput = svgChart("Throughput per second", "per second", rep.Timeline, []series{
		{"posted", "#1f77b4", func(t TimePoint) float64 { return t.Posted }},
		{"delivered", "#2ca02c", func(t TimePoint) float64 { return t.Delivered }},
		{"acked", "#9467bd", func(t TimePoint) float64 { return t.Acked }},
		{"errors", "#d62728", func(t TimePoint) float64 { return t.Errors }},
	})
	data.Latency = svgChart("Latency per second", "milliseconds", rep.Timeline, []series{
		{"POST p50", "#aec7e8", func(t TimePoint) float64 { return t.PostP50 }},
		{"POST p99", "#1f77b4", func(t TimePoint) float64 { return t.PostP99 }},
		{"claim p99", "#ff7f0e", func(t TimePoint) float64 { return t.ClaimP99 }},
	})
	if rep.Server != nil {
		data.Memory = svgChart("Server resident memory", "MiB", rep.Timeline, []series{
			{"RSS", "#8c564b", func(t TimePoint) float64 { return t.ServerRSSM }},
		})
	}
	var b bytes.Buffer
	if err := htmlTmpl.Execute(&b, data); err != nil {
		return fmt.Errorf("render HTML report: %w", err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write HTML report: %w", err)
	}
	return nil
}
