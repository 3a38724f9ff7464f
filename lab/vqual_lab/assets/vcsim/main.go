// vqual-vcsim: the lab's VMware simulator command, built offline from Debian's
// golang-github-vmware-govmomi-dev (0.24), which ships the simulator library but no vcsim
// command. One process is one instance: a vCenter (one datacenter, one cluster) or a
// standalone ESXi host. It is a simulator, not VMware: see docs/lab.md for what it cannot do.
//
// The password is read from a file (-credentials, JSON {"username","password"}) so it never
// appears in a process listing. The TLS certificate is self-signed and generated at start.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// hostValues collects repeatable HOST=VALUE flags; HOST "*" means every host.
type hostValues map[string]string

func (h hostValues) String() string { return fmt.Sprint(map[string]string(h)) }

func (h hostValues) Set(s string) error {
	i := strings.Index(s, "=")
	if i <= 0 {
		return fmt.Errorf("want HOST=VALUE, got %q", s)
	}
	h[s[:i]] = s[i+1:]
	return nil
}

// lookup returns the value for a host name, falling back to "*".
func (h hostValues) lookup(name string) (string, bool) {
	if v, ok := h[name]; ok {
		return v, true
	}
	v, ok := h["*"]
	return v, ok
}

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// cleanup undoes what was created so far; fail runs it because os.Exit skips deferred calls.
var cleanup = func() {}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "vqual-vcsim: "+format+"\n", args...)
	cleanup()
	os.Exit(2)
}

func main() {
	mode := flag.String("mode", "vcenter", "vcenter or esx")
	listen := flag.String("listen", "127.0.0.1:0", "address:port to serve the SDK on")
	credFile := flag.String("credentials", "", "JSON file with username and password (required)")
	certOut := flag.String("cert-out", "", "write the generated server certificate (PEM) here")
	nhosts := flag.Int("hosts", 4, "vcenter: hosts in the cluster")
	nvms := flag.Int("vms", 4, "VMs per resource pool")
	template := flag.Bool("template", true, "vcenter: add one powered-off VM marked as template")
	biosVendor := hostValues{}
	biosVersion := hostValues{}
	biosDate := hostValues{}
	sysVendor := hostValues{}
	sysModel := hostValues{}
	flag.Var(biosVendor, "bios-vendor", "HOST=VENDOR (repeatable; HOST * = all)")
	flag.Var(biosVersion, "bios-version", "HOST=VERSION (repeatable)")
	flag.Var(biosDate, "bios-date", "HOST=YYYY-MM-DD (repeatable)")
	flag.Var(sysVendor, "system-vendor", "HOST=VENDOR: hardware.systemInfo.vendor (repeatable)")
	flag.Var(sysModel, "system-model", "HOST=MODEL: hardware.systemInfo.model (repeatable)")
	flag.Parse()

	if *credFile == "" {
		fail("-credentials is required")
	}
	raw, err := os.ReadFile(*credFile)
	if err != nil {
		fail("reading credentials: %v", err)
	}
	var cred credentials
	if err := json.Unmarshal(raw, &cred); err != nil || cred.Username == "" || cred.Password == "" {
		fail("%s: want JSON with non-empty username and password", *credFile)
	}

	var model *simulator.Model
	switch *mode {
	case "vcenter":
		model = simulator.VPX()
		model.Host = 0 // no standalone host: one datacenter with one cluster
		model.Cluster = 1
		model.ClusterHost = *nhosts
	case "esx":
		model = simulator.ESX()
	default:
		fail("-mode must be vcenter or esx, not %q", *mode)
	}
	model.Machine = *nvms

	if err := model.Create(); err != nil {
		fail("creating the model: %v", err)
	}
	cleanup = model.Remove // deletes the datastores' temporary directories
	defer cleanup()

	if err := customiseHosts(biosVendor, biosVersion, biosDate, sysVendor, sysModel); err != nil {
		fail("%v", err)
	}

	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		fail("-listen: %v", err)
	}
	cert, err := selfSigned(host)
	if err != nil {
		fail("generating the TLS certificate: %v", err)
	}
	if *certOut != "" {
		block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
		if err := os.WriteFile(*certOut, block, 0o644); err != nil {
			fail("writing %s: %v", *certOut, err)
		}
	}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(cred.Username, cred.Password)}
	model.Service.RegisterEndpoints = true

	server := model.Service.NewServer()
	defer server.Close()

	if *mode == "vcenter" && *template {
		if err := addTemplate(server.URL); err != nil {
			fail("adding the template VM: %v", err)
		}
	}

	fmt.Printf("vqual-vcsim ready mode=%s url=https://%s/sdk\n", *mode, server.URL.Host)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	fmt.Println("vqual-vcsim stopping")
}

// customiseHosts gives every host its own BIOS record and advanced settings, then applies the
// per-host flags. The simulator shares one BIOS record and one advanced-settings list between
// all hosts, so without the copies a change on one host would show on all of them.
func customiseHosts(biosVendor, biosVersion, biosDate, sysVendor, sysModel hostValues) error {
	for _, e := range simulator.Map.All("HostSystem") {
		h := e.(*simulator.HostSystem)
		name := h.Name

		bios := *h.Hardware.BiosInfo
		h.Hardware.BiosInfo = &bios
		if v, ok := biosVendor.lookup(name); ok {
			bios.Vendor = v
		}
		if v, ok := biosVersion.lookup(name); ok {
			bios.BiosVersion = v
		}
		if v, ok := biosDate.lookup(name); ok {
			d, err := time.Parse("2006-01-02", v)
			if err != nil {
				return fmt.Errorf("-bios-date %s=%s: %v", name, v, err)
			}
			bios.ReleaseDate = &d
		}
		// summary.hardware was copied per host by the simulator; systemInfo is a value.
		if v, ok := sysVendor.lookup(name); ok {
			h.Hardware.SystemInfo.Vendor = v
			h.Summary.Hardware.Vendor = v
		}
		if v, ok := sysModel.lookup(name); ok {
			h.Hardware.SystemInfo.Model = v
			h.Summary.Hardware.Model = v
		}

		if ref := h.ConfigManager.AdvancedOption; ref != nil {
			if om, ok := simulator.Map.Get(*ref).(*simulator.OptionManager); ok {
				own := make([]types.BaseOptionValue, 0, len(om.Setting))
				for _, s := range om.Setting {
					v := *s.GetOptionValue()
					own = append(own, &v)
				}
				om.Setting = own
			}
		}
	}
	for _, flags := range []hostValues{biosVendor, biosVersion, biosDate, sysVendor, sysModel} {
		for name := range flags {
			if name != "*" && simulator.Map.FindByName(name, hostRefs()) == nil {
				return fmt.Errorf("no host named %q (hosts: %v)", name, hostNames())
			}
		}
	}
	return nil
}

func hostRefs() []types.ManagedObjectReference {
	var refs []types.ManagedObjectReference
	for _, e := range simulator.Map.All("HostSystem") {
		refs = append(refs, e.Reference())
	}
	return refs
}

func hostNames() []string {
	var names []string
	for _, e := range simulator.Map.All("HostSystem") {
		names = append(names, e.(*simulator.HostSystem).Name)
	}
	return names
}

// addTemplate powers off the last VM of the cluster and marks it as a template, through the
// API, as an operator would.
func addTemplate(u *url.URL) error {
	ctx := context.Background()
	c, err := govmomi.NewClient(ctx, u, true)
	if err != nil {
		return err
	}
	defer func() { _ = c.Logout(ctx) }()
	finder := find.NewFinder(c.Client, true)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		return err
	}
	finder.SetDatacenter(dc)
	vms, err := finder.VirtualMachineList(ctx, "*")
	if err != nil || len(vms) == 0 {
		return fmt.Errorf("no VM to turn into a template: %v", err)
	}
	vm := vms[len(vms)-1]
	var props mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"runtime.powerState"}, &props); err != nil {
		return err
	}
	if props.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
		task, err := vm.PowerOff(ctx)
		if err != nil {
			return err
		}
		if err := task.Wait(ctx); err != nil {
			return err
		}
	}
	return vm.MarkAsTemplate(ctx)
}

// selfSigned makes an ECDSA P-256 certificate for the listen address, valid for a week.
func selfSigned(host string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host, Organization: []string{"vqual lab (simulator)"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
