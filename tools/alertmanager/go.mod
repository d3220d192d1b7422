module github.com/hopwatch/hopwatch/tools/alertmanager

go 1.26.7

require github.com/prometheus/alertmanager v0.35.0 // indirect
