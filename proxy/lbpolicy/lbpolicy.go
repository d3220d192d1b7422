// Package lbpolicy holds what the config loader and the cluster manager
// both need to know about a load-balancing policy: its name, its config
// block with the block's defaults and validation, and the limits they
// share. It imports nothing of the proxy, so that proxy/config and
// proxy/cluster can both import it; how a policy picks a host, and what it
// is capable of, lives with its balancer in proxy/cluster.
//
// Each policy's config block is one type in its own file here
// (least_request.go, ring_hash.go, maglev.go), with ApplyDefaults and
// Validate. proxy/config finds the blocks in config.Cluster by their type
// (every field whose type implements [Config]) and calls both, so a new
// block needs no code in proxy/config besides its field.
package lbpolicy

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Names of the built-in policies, as config.Cluster.LBPolicy spells them.
const (
	RoundRobin   = "round_robin"
	LeastRequest = "least_request"
	Random       = "random"
	RingHash     = "ring_hash"
	Maglev       = "maglev"
)

// builtin lists the built-in policies in the order the docs and the
// "must be one of" error list them; round_robin, the default, first.
var builtin = []string{RoundRobin, LeastRequest, Random, RingHash, Maglev}

// registry holds the policies added with Register. It is written only
// while a program initialises (Register is meant for init functions) and
// read afterwards.
var registry struct {
	sync.RWMutex
	names []string
}

// Register adds a policy name that config accepts in lb_policy. A program
// that adds a policy calls it from an init function, as proxy/cluster's
// registerPolicy does; the built-in policies need not be registered. It
// panics on an empty or already known name, a programming error.
func Register(name string) {
	if name == "" || Known(name) {
		panic(fmt.Sprintf("lbpolicy: policy %q is empty or already registered", name))
	}
	registry.Lock()
	defer registry.Unlock()
	registry.names = append(registry.names, name)
}

// Names returns every known policy name: the built-in ones, then the
// registered ones in registration order.
func Names() []string {
	registry.RLock()
	defer registry.RUnlock()
	return append(slices.Clone(builtin), registry.names...)
}

// Known reports whether name is a policy config accepts.
func Known(name string) bool {
	return slices.Contains(Names(), name)
}

// Config is a policy's config block in a cluster (least_request_lb_config,
// ring_hash_lb_config, maglev_lb_config). Its methods take field paths
// relative to the block ("choice_count"); the caller prefixes them.
type Config interface {
	// ApplyDefaults fills every field that has a documented default and is
	// still zero, unless explicit reports that the file wrote the field its
	// argument points to (then even a zero is kept, for Validate to judge).
	ApplyDefaults(explicit func(field any) bool)
	// Validate reports every problem with the block, whichever policy the
	// cluster uses, as Envoy validates every field it is given.
	Validate(r Reporter)
}

// Reporter receives the problems Validate finds. field is relative to the
// block.
type Reporter interface {
	// Errorf reports that field is wrong.
	Errorf(field, format string, args ...any)
	// OneOf reports field unless value is one of allowed.
	OneOf(field, value string, allowed []string)
}

// Check validates a block built in code, which never went through the
// config loader, and returns its problems as one error whose parts start
// with the field path under block. The messages are the loader's.
func Check(block string, c Config) error {
	var r collector
	r.block = block
	c.Validate(&r)
	if len(r.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(r.errs, "; "))
}

// collector is the Reporter of Check.
type collector struct {
	block string
	errs  []string
}

func (c *collector) Errorf(field, format string, args ...any) {
	c.errs = append(c.errs, c.block+"."+field+": "+fmt.Sprintf(format, args...))
}

func (c *collector) OneOf(field, value string, allowed []string) {
	if !slices.Contains(allowed, value) {
		c.Errorf(field, "%s", OneOfMessage(value, allowed))
	}
}

// OneOfMessage is the message for a value that is not one of allowed; the
// config loader uses it for every enumerated field.
func OneOfMessage(value string, allowed []string) string {
	return fmt.Sprintf("must be one of %s; got %q", strings.Join(allowed, ", "), value)
}
