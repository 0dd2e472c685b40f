package config

import (
	"embed"
	"fmt"
	"io/fs"
)

// demoFiles is the configuration `make run` serves: loopback segments, three profiles and
// small sample lists, so the whole appliance can be tried on a laptop.
//
//go:embed demo/schoolgate.yaml demo/lists
var demoFiles embed.FS

// Demo returns the embedded demo configuration and the file system its relative list
// `file:` paths resolve in. The demo is checked by the package's tests, so a failure here
// is a build defect and panics.
func Demo() (*Config, fs.FS) {
	root, err := fs.Sub(demoFiles, "demo")
	if err != nil {
		panic(fmt.Sprintf("config: demo files: %v", err))
	}
	data, err := fs.ReadFile(root, "schoolgate.yaml")
	if err != nil {
		panic(fmt.Sprintf("config: demo config: %v", err))
	}
	cfg, err := Load(data)
	if err != nil {
		panic(fmt.Sprintf("config: demo config is invalid: %v", err))
	}
	return cfg, root
}

// DemoYAML returns the demo configuration as written, comments included, for the UI's
// "reset to demo" and for seeding a store.
func DemoYAML() []byte {
	data, err := demoFiles.ReadFile("demo/schoolgate.yaml")
	if err != nil {
		panic(fmt.Sprintf("config: demo config: %v", err))
	}
	return data
}
