package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/sluice-proxy/sluice/internal/version"
)

// manCmd writes the man pages from the commands themselves (cobra's
// GenManTree), so they never drift from --help: sluice.1 lists every
// command and sluice-<command>.1 describes each. The page date is today,
// or SOURCE_DATE_EPOCH for reproducible builds (make man and make
// release set it from the last commit).
func manCmd() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "man --dir DIR",
		Short: "Write the man pages (sluice.1 and sluice-COMMAND.1) into DIR",
		Long: `Write the man pages, generated from the commands and their flags, into DIR
(created if missing): sluice.1 for the program and one sluice-COMMAND.1
per command. Read one with 'man -l DIR/sluice.1'; install them under
/usr/local/share/man/man1. 'make man' writes them to dist/man.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			root.InitDefaultVersionFlag() // cobra adds --version only when it executes the root
			root.InitDefaultHelpFlag()
			header := &doc.GenManHeader{Section: "1", Source: "sluice " + version.Version, Manual: "sluice manual"}
			if err := doc.GenManTree(root, header, dir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "man pages written to %s\n", dir)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "directory to write the pages into")
	_ = c.MarkFlagRequired("dir")
	return c
}
