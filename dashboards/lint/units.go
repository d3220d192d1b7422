package lint

// validUnits are Grafana's unit ids that dashboards are likely to use
// (a subset of grafana/packages/grafana-data/src/valueFormats/categories.ts,
// as dashboard-linter checks against the same list).
var validUnits = map[string]bool{
	"none": true, "short": true, "sishort": true, "percent": true, "percentunit": true,
	"reqps": true, "rps": true, "wps": true, "ops": true, "opm": true, "rpm": true, "wpm": true,
	"ns": true, "µs": true, "ms": true, "s": true, "m": true, "h": true, "d": true, "dtdurationms": true, "dtdurations": true,
	"bytes": true, "decbytes": true, "bits": true, "decbits": true, "kbytes": true, "mbytes": true, "gbytes": true,
	"Bps": true, "binBps": true, "bps": true, "binbps": true, "pps": true,
	"hertz": true, "bool": true, "bool_yes_no": true, "bool_on_off": true,
}
