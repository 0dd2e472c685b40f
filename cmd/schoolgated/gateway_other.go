//go:build !linux

package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/devices"
	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/lists"
	"github.com/schoolgate/schoolgate/firmware/policy"
	"github.com/schoolgate/schoolgate/webui"
)

// gateway: the packet path needs Linux; elsewhere schoolgate filters DNS only.
type gateway struct{}

func newGateway(cfg *config.Config, _ string, _ *slog.Logger) *gateway {
	if cfg.Appliance.WAN == "" {
		return nil
	}
	return &gateway{}
}

func (g *gateway) macs() policy.MACLookup { return nil }

func (g *gateway) sightings(context.Context) ([]devices.Sighting, error) { return nil, nil }

func (g *gateway) start(context.Context, *config.Config, *lists.Catalog, *policy.Engine, *eventlog.Log, uint16) error {
	if g == nil {
		return nil
	}
	return errors.New("appliance.wan: the packet path needs Linux")
}

func (g *gateway) apply(*config.Config, *lists.Catalog) error { return nil }

func (g *gateway) close() error { return nil }

func (g *gateway) status() (webui.Component, *webui.PacketPath) {
	return webui.Component{Name: "packet path", State: "stopped", Detail: "needs Linux"}, nil
}
