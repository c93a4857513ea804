package outbox

import "sync"

// Change is a subscription change: subscribe to Channel (Sub) or leave it.
type Change struct {
	Channel string
	Sub     bool
}

// Changes holds a broker's wanted subscriptions and the changes its
// consumer goroutine has not applied yet. Set never blocks and never grows
// the pending list past one entry per channel: a channel subscribed and
// unsubscribed again before the consumer looks keeps only its last state,
// so room churn while the broker is slow costs no memory. Channels come out
// in the order they were first changed since the last Take. Set may be
// called from any goroutine, Take and Snapshot from the consumer.
type Changes struct {
	mu      sync.Mutex
	want    map[string]struct{}
	pending map[string]struct{}
	order   []string
}

// Set records that channel is wanted (sub) or not. It reports whether that
// changed the wanted state.
func (c *Changes) Set(channel string, sub bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.want == nil {
		c.want = make(map[string]struct{})
		c.pending = make(map[string]struct{})
	}
	if _, had := c.want[channel]; had == sub {
		return false
	}
	if sub {
		c.want[channel] = struct{}{}
	} else {
		delete(c.want, channel)
	}
	if _, ok := c.pending[channel]; !ok {
		c.pending[channel] = struct{}{}
		c.order = append(c.order, channel)
	}
	return true
}

// Take appends the pending changes to dst, each channel with its wanted
// state now, and forgets them. A change may restate what the consumer has
// already applied (subscribed, unsubscribed, subscribed again): the
// consumer skips those.
func (c *Changes) Take(dst []Change) []Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.order {
		_, sub := c.want[ch]
		dst = append(dst, Change{Channel: ch, Sub: sub})
	}
	clear(c.pending)
	clear(c.order)
	c.order = c.order[:0]
	return dst
}

// Snapshot returns every wanted channel and forgets the pending changes,
// which it includes: for a consumer that subscribes again from scratch.
func (c *Changes) Snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := make([]string, 0, len(c.want))
	for ch := range c.want {
		all = append(all, ch)
	}
	clear(c.pending)
	clear(c.order)
	c.order = c.order[:0]
	return all
}
