package main

import (
	"context"
	"fmt"

	"github.com/lazaret/lazaret/daemon"
	"github.com/lazaret/lazaret/s3api"
)

// s3Frontend is the [s3] table as a daemon frontend: the S3 API over the
// node, on its own listener.
func (c *Config) s3Frontend() daemon.Frontend {
	cfg := *c
	return daemon.Frontend{Name: "s3", Start: func(ctx context.Context, env daemon.FrontendEnv) (func(context.Context) error, <-chan error, error) {
		keys, err := cfg.s3Keys()
		if err != nil {
			return nil, nil, err
		}
		api, err := s3api.New(cfg.s3apiConfig(), env.Quarantine, keys, env.Log, env.Clock)
		if err != nil {
			return nil, nil, err
		}
		l, err := api.Listen(cfg.S3.Listen, cfg.S3.Cert, cfg.S3.Key)
		if err != nil {
			return nil, nil, err
		}
		env.Log.Info("s3 api listening", "url", l.URL(), "bucket", cfg.S3.Bucket)
		fmt.Fprintf(env.Stdout, "lazaret: S3 API on %s, bucket %s\n", l.URL(), cfg.S3.Bucket)
		return l.Shutdown, l.Failed(), nil
	}}
}
