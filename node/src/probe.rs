//! `colony probe`: the container health check (the image has no shell and no curl).

use colony_tls::identity::CA_FILE;
use std::path::PathBuf;

/// `colony probe`: one GET of the local node's API (HTTPS against the cluster CA when the
/// node has certificates), bounded by 3 s; exit 0 on 2xx. For container health checks,
/// where there is no shell and no curl.
pub fn probe(args: &crate::cli::ProbeArgs) -> std::process::ExitCode {
    use std::process::ExitCode;
    let addr = args.addr.clone().unwrap_or_else(|| {
        let port = std::env::var("COLONY_HTTP_LISTEN")
            .ok()
            .and_then(|v| v.trim().parse::<std::net::SocketAddr>().ok())
            .map_or(8080, |a| a.port());
        format!("127.0.0.1:{port}")
    });
    let ca = args.cacert.clone().or_else(|| {
        std::env::var_os("COLONY_TLS_CERTS_DIR")
            .filter(|d| !d.is_empty())
            .map(|d| PathBuf::from(d).join(CA_FILE))
    });
    let result = (|| -> Result<u16, String> {
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(3));
        let scheme = match &ca {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let cas = colony_tls::pem::certificates(&pem)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let tls = colony_tls::server::api_client(&cas).map_err(|e| e.to_string())?;
                builder = builder.tls_backend_preconfigured(tls);
                "https"
            }
            None => {
                let tls = colony_tls::client::public_roots(colony_tls::client::ALPN_HTTP1)
                    .map_err(|e| e.to_string())?;
                builder = builder.tls_backend_preconfigured(tls);
                "http"
            }
        };
        let client = builder.build().map_err(|e| e.to_string())?;
        let url = format!("{scheme}://{addr}{}", args.path);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let resp = client
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            Ok(resp.status().as_u16())
        })
    })();
    match result {
        Ok(status) if (200..300).contains(&status) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("colony probe: {}{} answered {status}", addr, args.path);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("colony probe: {e}");
            ExitCode::FAILURE
        }
    }
}
