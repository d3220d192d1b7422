module github.com/hopwatch/hopwatch/tools/tilt

go 1.26.0

require github.com/tilt-dev/tilt v0.33.21 // indirect
