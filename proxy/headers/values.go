package headers

// Values hands out one-element header values ([]string{v}) for one request,
// several from each allocation: a request sets a handful of them
// (x-forwarded-for, x-forwarded-host, x-request-id, x-envoy-upstream-service-time,
// server), and each []string{v} would be an allocation of its own.
//
// Every value is a capacity-1 window on a block that is never written again
// once the window is handed out, so a header map may keep it as long as it
// likes, and an append to it copies instead of writing into its neighbour.
// Blocks are never reused: the zero Values is ready, and a Values that
// lives in a pooled struct is reset by zeroing it, which only drops its
// pointer to the block.
type Values struct {
	block *[valuesPerBlock]string
	n     int
}

// valuesPerBlock covers the values one proxied request sets on its
// upstream request and its response (96 bytes, a size class of its own);
// a request that needs more takes another block.
const valuesPerBlock = 6

// One returns []string{v} without an allocation of its own.
func (vs *Values) One(v string) []string {
	if vs.block == nil || vs.n == len(vs.block) {
		vs.block, vs.n = new([valuesPerBlock]string), 0
	}
	i := vs.n
	vs.block[i] = v
	vs.n++
	return vs.block[i : i+1 : i+1]
}
