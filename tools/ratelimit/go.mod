module github.com/hopwatch/hopwatch/tools/ratelimit

go 1.26.0

require github.com/envoyproxy/ratelimit v1.4.1-0.20260122083618-3fb702589d36 // indirect
