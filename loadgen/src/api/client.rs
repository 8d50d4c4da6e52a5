//! The client: one [`Api`] per base URL, a method per endpoint, each answer read by its one
//! decoder in [`super::body`].

use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use super::auth::Auth;
use super::body::{
    Answer, Created, ErrorBody, EventCounts, JobAnswer, JobView, Posted, SeatList, SeatMessage,
    SeatView,
};
use super::spelling::JobKind;
use super::values::seat_number;

/// A client for one API base URL (`http://127.0.0.1:3000`).
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    auth: Auth,
}

impl Api {
    /// A client that keeps up to `connections` idle connections open to the API.
    pub fn new(base: &str, connections: usize) -> Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections.max(1))
            .tcp_nodelay(true)
            // Below the API's keep-alive (5 s by default), so that an idle connection is never
            // reused just as the server closes it (a POST cannot be retried safely).
            .pool_idle_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Self::with_client(http, base))
    }

    /// A client on an HTTP client of the caller's, with its pool and timeouts (the e2e tests
    /// share one between the API instances they start).
    pub fn with_client(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            auth: Auth::None,
        }
    }

    /// The same client, identifying its users as `auth` says (a jwt-mode service needs tokens).
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Opens `n` connections (or makes sure they are open) by `n` GETs of `path` at once; they
    /// then wait in the pool.
    pub async fn open_connections(&self, path: &str, n: usize) -> Result<()> {
        futures::future::try_join_all((0..n).map(|_| self.get_ok(path))).await?;
        Ok(())
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /events/create`; the new event's id.
    pub async fn create_event(&self, name: &str, seats: u32) -> Result<String> {
        let body = format!(
            r#"{{"name":{},"totalSeats":{seats}}}"#,
            serde_json::to_string(name)?
        );
        let admin = self.auth.admin_header()?;
        match self
            .post::<Created>("/events/create", body, admin, 201)
            .await
        {
            Ok(Answer::Success { body, .. }) => Ok(body.id),
            Ok(refused) => bail!(
                "POST /events/create answered {}: {refused}",
                refused.status()
            ),
            Err(e) => Err(e.context("POST /events/create")),
        }
    }

    /// `POST /seats/hold`.
    pub async fn hold(&self, seat: &str, user: &str) -> Result<Posted> {
        self.post_job(JobKind::Hold, seat, user).await
    }

    /// `POST /seats/reserve`.
    pub async fn reserve(&self, seat: &str, user: &str) -> Result<Posted> {
        self.post_job(JobKind::Reserve, seat, user).await
    }

    /// `POST /seats/hold` or `POST /seats/reserve`, as `kind` says.
    pub async fn post_job(&self, kind: JobKind, seat: &str, user: &str) -> Result<Posted> {
        let auth = self.auth.headers_for(user)?;
        self.post(kind.path(), seat_body(seat, user), auth, 202)
            .await
    }

    /// `POST /seats/refresh`.
    pub async fn refresh(&self, seat: &str, user: &str) -> Result<Answer<SeatMessage>> {
        let auth = self.auth.headers_for(user)?;
        self.post("/seats/refresh", seat_body(seat, user), auth, 200)
            .await
    }

    /// `POST /seats/release`.
    pub async fn release(&self, seat: &str, user: &str) -> Result<Answer<SeatMessage>> {
        let auth = self.auth.headers_for(user)?;
        self.post("/seats/release", seat_body(seat, user), auth, 200)
            .await
    }

    /// A POST of a JSON body whose answer is a `T` when its status is `success`.
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: String,
        auth: Option<(&'static str, String)>,
        success: u16,
    ) -> Result<Answer<T>> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/json");
        if let Some((name, value)) = auth {
            request = request.header(name, value);
        }
        let response = request.body(body).send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        if status == success {
            let body = serde_json::from_slice(&bytes)
                .with_context(|| format!("the {status} body of POST {path}"))?;
            Ok(Answer::Success { status, body })
        } else {
            let error = serde_json::from_slice::<ErrorBody>(&bytes).ok();
            Ok(Answer::Refused { status, error })
        }
    }

    /// `GET /seats/job/{id}/status`, with `?wait=N` when `wait_secs` is given.
    pub async fn job(&self, job: &str, wait_secs: Option<u64>) -> Result<JobAnswer> {
        match self.job_status(job, wait_secs).await? {
            Some(view) => view.answer(),
            None => Ok(JobAnswer::NotFound),
        }
    }

    /// `GET /seats/job/{id}/status`, with `?wait=N` when `wait_secs` is given: the job as it
    /// stands, `None` when the API does not know it (404: unknown, or past JOB_RESULT_TTL).
    pub async fn job_status(&self, job: &str, wait_secs: Option<u64>) -> Result<Option<JobView>> {
        let url = match wait_secs {
            Some(w) => format!("{}/seats/job/{job}/status?wait={w}", self.base),
            None => format!("{}/seats/job/{job}/status", self.base),
        };
        let response = self.http.get(url).send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        match status {
            200 => Ok(Some(
                serde_json::from_slice(&bytes).context("a job status body")?,
            )),
            404 => Ok(None),
            _ => bail!(
                "GET job status of {job} answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }

    /// `GET /seats/get/{id}`, anonymously: nobody's id is shown.
    pub async fn seat(&self, seat: &str) -> Result<SeatView> {
        let bytes = self.get_ok(&format!("/seats/get/{seat}")).await?;
        serde_json::from_slice(&bytes).context("a seat body")
    }

    /// `GET /seats/get/{id}` as `user` asks it (`X-User-Id`, or the user's token): the seat
    /// shows the user's id when the user holds or reserved it, `""` otherwise.
    pub async fn seat_as(&self, seat: &str, user: &str) -> Result<SeatView> {
        let asker = self.auth.viewer_header(user)?;
        let bytes = self
            .get_ok_as(&format!("/seats/get/{seat}"), Some(asker))
            .await?;
        serde_json::from_slice(&bytes).context("a seat body")
    }

    /// `GET /seats/list/{eventId}`: the event and the seats listed Available.
    pub async fn seat_list(&self, event: &str) -> Result<SeatList> {
        let bytes = self.get_ok(&format!("/seats/list/{event}")).await?;
        serde_json::from_slice(&bytes).context("a seat list")
    }

    /// `GET /seats/list/{eventId}`: the numbers of the seats listed Available.
    pub async fn available(&self, event: &str) -> Result<Vec<u32>> {
        self.seat_list(event)
            .await?
            .seats
            .iter()
            .map(|s| seat_number(&s.id))
            .collect::<Result<Vec<_>>>()
    }

    /// `GET /seats/list/{eventId}`, the body read whole but not parsed (for timing the endpoint
    /// alone): its length in bytes.
    pub async fn list_len(&self, event: &str) -> Result<usize> {
        Ok(self.get_ok(&format!("/seats/list/{event}")).await?.len())
    }

    /// A GET that must answer 200: its body.
    async fn get_ok(&self, path: &str) -> Result<Vec<u8>> {
        self.get_ok_as(path, None).await
    }

    /// A GET with `header` (the asker's) that must answer 200: its body.
    async fn get_ok_as(&self, path: &str, header: Option<(&str, String)>) -> Result<Vec<u8>> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        if status != 200 {
            bail!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(bytes.to_vec())
    }

    /// `GET /events/{id}`.
    pub async fn event(&self, event: &str) -> Result<EventCounts> {
        let bytes = self.get_ok(&format!("/events/{event}")).await?;
        serde_json::from_slice(&bytes).context("an event body")
    }
}

fn seat_body(seat: &str, user: &str) -> String {
    // Seat ids and UUIDs need no JSON escaping.
    format!(r#"{{"id":"{seat}","UUID":"{user}"}}"#)
}
