package main

import (
	"context"
	"fmt"
	"time"

	"github.com/lazaret/lazaret/s3api"
)

// s3 is `lazaret s3 key create|list`: access keys of the S3 API, kept in
// the node's key file ([s3] keys_file) with their secrets encrypted.
func (m *Main) s3(ctx context.Context, args []string) error {
	if len(args) < 2 || args[0] != "key" || (args[1] != "create" && args[1] != "list") {
		return usagef("want 'lazaret s3 key create --name N [--read-only] [--config FILE]' or 'lazaret s3 key list [--config FILE]'")
	}
	fs := m.newFlags("s3 key "+args[1], "")
	configPath := fs.String("config", "", "the node's configuration file (default: embedded defaults)")
	name := fs.String("name", "", "name of the new key (create)")
	readOnly := fs.Bool("read-only", false, "the key may only list and read (backups); default readwrite (restore, delete)")
	if _, err := parse(fs, args[2:]); err != nil {
		return err
	}
	cfg, err := loadConfigOr(*configPath)
	if err != nil {
		return err
	}
	kf := s3api.OpenKeyFile(cfg.s3KeysFile())
	if args[1] == "list" {
		keys, err := kf.Load()
		if err != nil {
			return err
		}
		for _, k := range keys {
			fmt.Fprintf(m.Stdout, "%s\t%s\t%s\n", k.Name, k.AccessKey, k.Role)
		}
		return nil
	}
	if *name == "" {
		return usagef("s3 key create: --name is required")
	}
	role := s3api.RoleReadWrite
	if *readOnly {
		role = s3api.RoleRead
	}
	k, err := kf.Create(*name, role, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "access key: %s\nsecret key: %s\nrole:       %s\nstored in %s (secret encrypted under %s.master)\n", k.AccessKey, k.Secret, k.Role, kf.Path(), kf.Path())
	return nil
}
