/* The mail queue: messages are records "mail" in the store (due when a delivery is to be
 * tried), so that a restart or a server that is down loses nothing; a thread of its own sends
 * a batch of due messages with libcurl's SMTP (STARTTLS, AUTH) while the loop goes on, and the
 * tick takes its outcome back: sent, or tried again later (mail.retry_s doubling up to
 * mail.retry_max_s), or given up after mail.max_attempts. docs/mail.md. */
#include "hub_impl.h"
#include "mail.h"
#include "tasks.h"
#include "zk.h"
#include "core/clk.h"
#include "core/conf.h"
#include "core/err.h"
#include "core/wire.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAIL_BATCH 10
#define MAIL_MAX_TO 50
#define MAIL_MAX_BODY (4 << 20)
#define MAIL_MAX_ATTACH (8 << 20)

/* One delivery: the messages (bodies of their records) and the settings it uses, owned by
 * the thread while it runs; err[i] is NULL when message i was sent. */
struct mail_job {
	json_t *recs;
	char *url, *from, *user, *password, *ca;
	long use_ssl, timeout_s;
	char *err[MAIL_BATCH];
};

struct mail {
	struct hub *h;
	pthread_t thread;
	int busy;        /* a thread runs job */
	atomic_int done; /* it has finished */
	struct mail_job *job;
};

static const char *str_of(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

int mail_configured(const struct hub *h)
{
	const char *url = h->conf->mail.smtp_url;
	return url && *url;
}

/* ---- the delivery thread ---- */

/* A header value: as is when ASCII, else an RFC 2047 encoded word of base64. */
static char *header_word(const char *s)
{
	size_t n = strlen(s), cap;
	char *out;
	int ascii = 1;

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			ascii = 0;
	if (ascii)
		return strdup(s);
	cap = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL) + 16;
	if (!(out = malloc(cap)))
		return NULL;
	memcpy(out, "=?UTF-8?B?", 10);
	sodium_bin2base64(out + 10, cap - 12, (const unsigned char *)s, n,
	                  sodium_base64_VARIANT_ORIGINAL);
	strcat(out, "?=");
	return out;
}

static struct curl_slist *add_header(struct curl_slist *l, const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 3;
	char *line = malloc(n);
	struct curl_slist *r;

	if (!line)
		return NULL;
	snprintf(line, n, "%s: %s", name, value);
	r = curl_slist_append(l, line);
	free(line);
	return r;
}

/* Sends one message; NULL, or what went wrong (caller frees). */
static char *mail_send_one(const struct mail_job *j, const json_t *rec)
{
	CURL *c = curl_easy_init();
	struct curl_slist *rcpt = NULL, *hdrs = NULL, *ph = NULL;
	curl_mime *mime = NULL, *alt = NULL;
	curl_mimepart *part;
	const json_t *to = json_object_get(rec, "to"), *att = json_object_get(rec, "attachment"),
	             *v;
	char addr[300], errbuf[CURL_ERROR_SIZE] = "", date[64], *subj = NULL, *tolist = NULL;
	char *err = NULL;
	size_t i, tl = 1;
	time_t now = time(NULL);
	struct tm tm;
	CURLcode rc;

	if (!c)
		return strdup("out of memory");
	json_array_foreach(to, i, v) tl += json_string_length(v) + 2;
	if (!(tolist = calloc(1, tl)))
		goto oom;
	json_array_foreach(to, i, v)
	{
		snprintf(addr, sizeof(addr), "<%s>", json_string_value(v));
		if (!(rcpt = curl_slist_append(rcpt, addr)))
			goto oom;
		if (i)
			strcat(tolist, ", ");
		strcat(tolist, json_string_value(v));
	}
	snprintf(addr, sizeof(addr), "<%s>", j->from);
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (!(subj = header_word(str_of(rec, "subject"))))
		goto oom;
	hdrs = add_header(hdrs, "Date", date);
	hdrs = hdrs ? add_header(hdrs, "From", j->from) : NULL;
	hdrs = hdrs ? add_header(hdrs, "To", tolist) : NULL;
	hdrs = hdrs ? add_header(hdrs, "Subject", subj) : NULL;
	{
		char mid[200];
		snprintf(mid, sizeof(mid), "<%s@outpost-hub>", str_of(rec, "id"));
		hdrs = hdrs ? add_header(hdrs, "Message-ID", mid) : NULL;
	}
	if (!hdrs)
		goto oom;
	mime = curl_mime_init(c);
	alt = curl_mime_init(c);
	if (!mime || !alt)
		goto oom;
	if (str_of(rec, "text")) {
		part = curl_mime_addpart(alt);
		curl_mime_data(part, str_of(rec, "text"), CURL_ZERO_TERMINATED);
		curl_mime_type(part, "text/plain; charset=utf-8");
		curl_mime_encoder(part, "quoted-printable");
	}
	if (str_of(rec, "html")) {
		part = curl_mime_addpart(alt);
		curl_mime_data(part, str_of(rec, "html"), CURL_ZERO_TERMINATED);
		curl_mime_type(part, "text/html; charset=utf-8");
		curl_mime_encoder(part, "quoted-printable");
	}
	part = curl_mime_addpart(mime);
	curl_mime_subparts(part, alt);
	alt = NULL; /* the part owns it now */
	curl_mime_type(part, "multipart/alternative");
	if (!(ph = curl_slist_append(NULL, "Content-Disposition: inline")))
		goto oom;
	curl_mime_headers(part, ph, 1);
	if (json_is_object(att)) {
		part = curl_mime_addpart(mime);
		curl_mime_data(part, str_of(att, "content"),
		               json_string_length(json_object_get(att, "content")));
		curl_mime_filename(part, str_of(att, "name"));
		curl_mime_type(part, str_of(att, "type"));
		curl_mime_encoder(part, "base64");
	}
	curl_easy_setopt(c, CURLOPT_URL, j->url);
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, addr);
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(c, CURLOPT_USE_SSL, j->use_ssl);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, j->timeout_s);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, j->timeout_s);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 0L);
	if (j->user) {
		curl_easy_setopt(c, CURLOPT_USERNAME, j->user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, j->password ? j->password : "");
	}
	if (j->ca)
		curl_easy_setopt(c, CURLOPT_CAINFO, j->ca);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		size_t n = strlen(curl_easy_strerror(rc)) + strlen(errbuf) + 4;
		if ((err = malloc(n)))
			snprintf(err, n, "%s%s%s", curl_easy_strerror(rc), errbuf[0] ? ": " : "",
			         errbuf);
	}
	goto out;
oom:
	err = strdup("out of memory");
out:
	curl_mime_free(alt);
	curl_mime_free(mime);
	curl_slist_free_all(hdrs);
	curl_slist_free_all(rcpt);
	curl_easy_cleanup(c);
	free(subj);
	free(tolist);
	return err;
}

static void *mail_thread(void *arg)
{
	struct mail *m = arg;
	struct mail_job *j = m->job;
	json_t *rec;
	size_t i;

	json_array_foreach(j->recs, i, rec) j->err[i] = mail_send_one(j, rec);
	atomic_store(&m->done, 1);
	return NULL;
}

static void job_free(struct mail_job *j)
{
	if (!j)
		return;
	for (int i = 0; i < MAIL_BATCH; i++)
		free(j->err[i]);
	json_decref(j->recs);
	free(j->url);
	free(j->from);
	free(j->user);
	if (j->password)
		sodium_memzero(j->password, strlen(j->password));
	free(j->password);
	free(j->ca);
	free(j);
}

/* The password in mail.password_file, its trailing newline cut; NULL when unreadable. */
static char *read_password(const char *path)
{
	char buf[1024];
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return strdup(buf);
}

/* A copy of a config string for the thread (a reload frees the config it came from). */
static char *dup_conf(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

/* ---- on the loop ---- */

/* A finished delivery's outcome, into the store. */
static void mail_collect(struct mail *m)
{
	struct hub *h = m->h;
	struct mail_job *j = m->job;
	int64_t now = clk_real_ms();
	int64_t retry = h->conf->mail.retry_s * 1000;
	int64_t retry_max = h->conf->mail.retry_max_s * 1000;
	int64_t max_attempts = h->conf->mail.max_attempts;
	json_t *rec;
	size_t i;

	pthread_join(m->thread, NULL);
	m->busy = 0;
	json_array_foreach(j->recs, i, rec)
	{
		int64_t attempts = json_integer_value(json_object_get(rec, "attempts")) + 1,
		        due = 0;
		json_object_set_new(rec, "attempts", json_integer(attempts));
		if (!j->err[i]) {
			json_object_set_new(rec, "state", json_string("sent"));
			json_object_set_new(rec, "sent_ms", json_integer(now));
			/* What was sent is the receiver's now: the record keeps its envelope. */
			json_object_del(rec, "text");
			json_object_del(rec, "html");
			json_object_del(json_object_get(rec, "attachment"), "content");
			log_info(h->log, "mail", "mail %s sent to %zu address(es)",
			         str_of(rec, "id"), json_array_size(json_object_get(rec, "to")));
		} else {
			json_object_set_new(rec, "last_error", json_string(j->err[i]));
			if (attempts >= max_attempts) {
				json_object_set_new(rec, "state", json_string("failed"));
				log_error(h->log, "mail",
				          "mail %s given up after %lld attempts: %s",
				          str_of(rec, "id"), (long long)attempts, j->err[i]);
			} else {
				int64_t wait = retry;
				for (int64_t k = 1; k < attempts && wait < retry_max; k++)
					wait *= 2;
				due = now + (wait < retry_max ? wait : retry_max);
				log_warn(h->log, "mail",
				         "mail %s not sent (attempt %lld): %s; again in %lld s",
				         str_of(rec, "id"), (long long)attempts, j->err[i],
				         (long long)((due - now) / 1000));
			}
		}
		json_object_set_new(rec, "updated_ms", json_integer(now));
		if (h->store->ops->rec_put(h->store, "mail", str_of(rec, "id"), rec, due, now, 0) <
		    0)
			log_error(h->log, "mail", "mail %s: cannot store its state",
			          str_of(rec, "id"));
	}
	job_free(j);
	m->job = NULL;
}

void mail_tick(struct hub *h)
{
	struct mail *m = h->mail;
	struct mail_job *j;
	const char *tls;
	json_t *due = NULL;

	if (!m)
		return;
	if (m->busy) {
		if (atomic_load(&m->done))
			mail_collect(m);
		return;
	}
	if (!mail_configured(h) || !zk_leads(h->zk) || h->stopping)
		return;
	if (h->store->ops->rec_due(h->store, "mail", clk_real_ms(), MAIL_BATCH, &due) < 0 ||
	    json_array_size(due) == 0) {
		json_decref(due);
		return;
	}
	if (!(j = calloc(1, sizeof(*j)))) {
		json_decref(due);
		return;
	}
	j->recs = due;
	j->url = dup_conf(h->conf->mail.smtp_url);
	j->from = dup_conf(h->conf->mail.from);
	j->user = dup_conf(h->conf->mail.username);
	j->ca = dup_conf(h->conf->mail.ca_file);
	if (h->conf->mail.password_file &&
	    !(j->password = read_password(h->conf->mail.password_file)))
		log_warn(h->log, "mail", "cannot read mail.password_file");
	tls = h->conf->mail.starttls;
	j->use_ssl = !tls || strcmp(tls, "always") == 0 ? CURLUSESSL_ALL
	             : strcmp(tls, "try") == 0          ? CURLUSESSL_TRY
	                                                : CURLUSESSL_NONE;
	j->timeout_s = (long)h->conf->mail.timeout_s;
	m->job = j;
	atomic_store(&m->done, 0);
	if (!j->url || !j->from || pthread_create(&m->thread, NULL, mail_thread, m) != 0) {
		log_error(h->log, "mail", "cannot start a delivery");
		job_free(j);
		m->job = NULL;
		return;
	}
	m->busy = 1;
}

int mail_new(struct hub *h, struct mail **out)
{
	struct mail *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return OUTPOST_E_INTERNAL;
	curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread; counted, once is enough */
	m->h = h;
	*out = m;
	return 0;
}

void mail_free(struct mail *m)
{
	if (!m)
		return;
	if (m->busy)
		mail_collect(m);
	free(m);
}

/* ---- queueing ---- */

/* An address as SMTP takes it between < and >: local@domain, printable, no space. */
static int addr_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	const char *at = s ? strchr(s, '@') : NULL;

	if (n < 3 || n > 254 || !at || at == s || !at[1] || strchr(at + 1, '@'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f ||
		    strchr("<>,;\"\\()[]", s[i]))
			return 0;
	return 1;
}

/* Text for a header: valid UTF-8, no control character (no line break: no injection). */
static int header_ok(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > max || !wire_utf8_ok(s, n))
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < ' ' || s[i] == 0x7f)
			return 0;
	return 1;
}

static int body_ok(const char *s, size_t max)
{
	return !s || (strlen(s) <= max && wire_utf8_ok(s, strlen(s)));
}

int mail_queue(struct hub *h, const struct mail_msg *m, char *msg, size_t msglen)
{
	int64_t now = clk_real_ms();
	json_t *rec = NULL, *to;
	char genid[40];
	const char *id = m->id;
	int rc;

	if (!mail_configured(h)) {
		snprintf(msg, msglen, "mail is not configured: set mail.smtp_url and mail.from");
		return OUTPOST_E_BAD_ARGS;
	}
	if (m->nto < 1 || m->nto > MAIL_MAX_TO) {
		snprintf(msg, msglen, "to: 1 to %d addresses", MAIL_MAX_TO);
		return OUTPOST_E_BAD_ARGS;
	}
	for (size_t i = 0; i < m->nto; i++)
		if (!addr_ok(m->to[i])) {
			snprintf(msg, msglen, "to: '%.80s' is not an address (local@domain)",
			         m->to[i] ? m->to[i] : "");
			return OUTPOST_E_BAD_ARGS;
		}
	if (!header_ok(m->subject, 900)) {
		snprintf(msg, msglen, "subject: 1 to 900 bytes of UTF-8 text on one line");
		return OUTPOST_E_BAD_ARGS;
	}
	if ((!m->text && !m->html) || !body_ok(m->text, MAIL_MAX_BODY) ||
	    !body_ok(m->html, MAIL_MAX_BODY)) {
		snprintf(msg, msglen, "text or html: a body of UTF-8 text up to %d bytes",
		         MAIL_MAX_BODY);
		return OUTPOST_E_BAD_ARGS;
	}
	if (m->attach_data &&
	    (!header_ok(m->attach_name, 128) || strpbrk(m->attach_name, "\"/\\") ||
	     !header_ok(m->attach_type, 128) || m->attach_len > MAIL_MAX_ATTACH ||
	     !wire_utf8_ok(m->attach_data, m->attach_len))) {
		snprintf(msg, msglen,
		         "attachment: a name (no \" / \\), a MIME type and up to %d bytes of text",
		         MAIL_MAX_ATTACH);
		return OUTPOST_E_BAD_ARGS;
	}
	if (id && (!wire_id_ok(id) || strlen(id) > 64)) {
		snprintf(msg, msglen, "id: 1 to 64 of A-Z a-z 0-9 . _ : -");
		return OUTPOST_E_BAD_ARGS;
	}
	if (!id) {
		if (tasks_new_id("m-", genid, sizeof(genid)) < 0)
			return OUTPOST_E_INTERNAL;
		id = genid;
	}
	if (!(to = json_array()))
		return OUTPOST_E_INTERNAL;
	for (size_t i = 0; i < m->nto; i++)
		json_array_append_new(to, json_string(m->to[i]));
	rec = json_pack("{s:s, s:o, s:s, s:s?, s:s?, s:s, s:s, s:i, s:I, s:I}", "id", id, "to", to,
	                "subject", m->subject, "text", m->text, "html", m->html, "origin",
	                m->origin ? m->origin : "hub", "state", "queued", "attempts", 0,
	                "created_ms", (json_int_t)now, "updated_ms", (json_int_t)now);
	if (rec && m->attach_data)
		json_object_set_new(rec, "attachment",
		                    json_pack("{s:s, s:s, s:s%}", "name", m->attach_name, "type",
		                              m->attach_type, "content", m->attach_data,
		                              m->attach_len));
	if (!rec)
		return OUTPOST_E_INTERNAL;
	rc = h->store->ops->rec_put(h->store, "mail", id, rec, now, now, 1);
	json_decref(rec);
	if (rc == OUTPOST_E_CONFLICT) /* a repeat: queued once */
		return 0;
	if (rc < 0)
		snprintf(msg, msglen, "cannot queue the mail (%s)", err_name(rc));
	else
		log_info(h->log, "mail", "mail %s queued for %zu address(es) (%s)", id, m->nto,
		         m->origin ? m->origin : "hub");
	return rc;
}

void mail_api_list(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	const char *s = httpd_req_query(req, "limit");
	long n = s ? strtol(s, NULL, 10) : 100;
	json_t *v = NULL, *rec;
	size_t i;
	int rc = h->store->ops->rec_list(h->store, "mail",
	                                 n < 1      ? 1
	                                 : n > 1000 ? 1000
	                                            : (int)n,
	                                 &v);

	json_array_foreach(v, i, rec)
	{
		json_object_del(rec, "text");
		json_object_del(rec, "html");
		json_object_del(json_object_get(rec, "attachment"), "content");
	}
	hub_respond_store(req, rc, v, "mail");
}
