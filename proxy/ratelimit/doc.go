// Package ratelimit is hopwatch's rate limiting, after Envoy's two HTTP
// filters:
//
//   - Local (envoy.filters.http.local_ratelimit): a token bucket per route,
//     or per virtual host shared by its routes without their own. A request
//     takes a token or is refused with 429, x-envoy-ratelimited: true and
//     the body "local_rate_limited". Stats:
//     <stat_prefix>.http_local_rate_limit.{enabled,ok,rate_limited,enforced}.
//   - Global (envoy.filters.http.ratelimit): descriptors built from the
//     route's and virtual host's rate_limits actions are sent to a service
//     speaking envoy.service.ratelimit.v3 (envoyproxy/ratelimit, say) over
//     gRPC; OVER_LIMIT refuses the request with 429; an error or timeout
//     lets it through or refuses it with 500 (flag RLSE) per
//     failure_mode_deny. Stats: cluster.<routed cluster>.ratelimit.{ok,
//     error,over_limit,failure_mode_allowed}.
//
// The connection manager runs the local limiter first and the global one
// second, Envoy's usual filter order. Everything here is compiled once per
// configuration (route.Table, connmgr.Snapshot); the request path takes a
// token under a short lock, builds descriptors without regular
// expressions unless a header_value_match asks for one, and makes one
// unary gRPC call on a long-lived connection.
package ratelimit
