package topologies

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"

	"scalelab/internal/netsim"
)

// LinkAction is what a network fault does to a link.
type LinkAction string

// The link actions.
const (
	// LinkPartition stops all data on the link (held, not lost: TCP's
	// view of a failed network) until healed.
	LinkPartition LinkAction = "partition"
	// LinkSlow adds LinkFault.Latency each way (or one way).
	LinkSlow LinkAction = "slow"
	// LinkBandwidth caps the link at LinkFault.RateKBps.
	LinkBandwidth LinkAction = "bandwidth"
	// LinkReset resets every connection on the link, and every new one,
	// until healed.
	LinkReset LinkAction = "reset"
)

// LinkActions lists the link actions.
func LinkActions() []LinkAction {
	return []LinkAction{LinkPartition, LinkSlow, LinkBandwidth, LinkReset}
}

// The directions of a link fault.
const (
	DirectionBoth     = "both"     // the default
	DirectionForward  = "forward"  // from → to only (requests, WAL to a replica)
	DirectionBackward = "backward" // to → from only (answers, a replica's feedback)
)

// LinkFault is one network fault.
type LinkFault struct {
	Action LinkAction
	// Direction is both (default), forward or backward.
	Direction string
	// Latency is what slow adds.
	Latency time.Duration
	// RateKBps is what bandwidth caps the link at.
	RateKBps int
}

// streams are Toxiproxy's names for the directions a fault acts on:
// upstream is from the link's client (from) to its server (to).
func (f LinkFault) streams() ([]string, error) {
	switch f.Direction {
	case "", DirectionBoth:
		return []string{"upstream", "downstream"}, nil
	case DirectionForward:
		return []string{"upstream"}, nil
	case DirectionBackward:
		return []string{"downstream"}, nil
	}
	return nil, fmt.Errorf("direction %q, want both, forward or backward", f.Direction)
}

// Check says whether the fault is well formed.
func (f LinkFault) Check() error {
	if _, err := f.streams(); err != nil {
		return err
	}
	switch f.Action {
	case LinkPartition, LinkReset:
	case LinkSlow:
		if f.Latency <= 0 {
			return fmt.Errorf("slow needs a positive latency")
		}
	case LinkBandwidth:
		if f.RateKBps <= 0 {
			return fmt.Errorf("bandwidth needs a positive rate (KB/s)")
		}
	default:
		return fmt.Errorf("action %q, want partition, slow, bandwidth or reset", f.Action)
	}
	return nil
}

// toxic is the Toxiproxy toxic type and attributes that make the fault.
func (f LinkFault) toxic() (string, toxiclient.Attributes) {
	switch f.Action {
	case LinkSlow:
		return netsim.LatencyToxicType, toxiclient.Attributes{"latency_us": f.Latency.Microseconds()}
	case LinkBandwidth:
		return "bandwidth", toxiclient.Attributes{"rate": f.RateKBps}
	case LinkReset:
		return "reset_peer", toxiclient.Attributes{"timeout": 0}
	}
	return netsim.HoldToxicType, nil
}

// HasLink says whether the topology proxies a link called name, and
// lists the ones it does when not.
func (t *Topology) HasLink(name string) error { return t.rt.net.has(name) }

// InjectLinkFault applies f to the link called name (e.g.
// primary->replica-1) and returns the function that heals it.
func (t *Topology) InjectLinkFault(ctx context.Context, name string, f LinkFault) (heal func(context.Context) error, err error) {
	return t.rt.net.fault(ctx, name, f)
}

func (n *network) has(name string) error {
	if !n.on() {
		return fmt.Errorf("no link %q: the network profile is none, so no link is proxied (run with --network datacenter or internet)", name)
	}
	links := n.Links()
	if slices.ContainsFunc(links, func(l Link) bool { return l.Name == name }) {
		return nil
	}
	names := make([]string, len(links))
	for i, l := range links {
		names[i] = l.Name
	}
	return fmt.Errorf("topology has no link %q (it has %s)", name, strings.Join(names, ", "))
}

// fault adds the toxics that make f on the link's proxy; heal removes
// them. Two faults on one link at once are told apart by their names.
func (n *network) fault(_ context.Context, name string, f LinkFault) (func(context.Context) error, error) {
	if err := n.has(name); err != nil {
		return nil, err
	}
	if err := f.Check(); err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	p, err := n.client().Proxy(name)
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	streams, _ := f.streams()
	typ, attrs := f.toxic()
	stamp := time.Now().UnixNano()
	var added []string
	heal := func(context.Context) error {
		var errs []string
		for _, tn := range added {
			if err := p.RemoveToxic(tn); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("heal link %s: %s", name, strings.Join(errs, "; "))
		}
		return nil
	}
	for _, s := range streams {
		tn := fmt.Sprintf("fault_%s_%s_%d", f.Action, s, stamp)
		if _, err := p.AddToxic(tn, typ, s, 1, attrs); err != nil {
			herr := heal(context.Background())
			return nil, fmt.Errorf("link %s: %s %s: %w (healing what was added: %v)", name, f.Action, s, err, herr)
		}
		added = append(added, tn)
	}
	return heal, nil
}
