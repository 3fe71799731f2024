//! Full-text contact search on tantivy. The store is the source of truth: the index follows
//! the store's contact change log and records, as its commit payload, the last change
//! sequence it contains. At open it replays whatever it is missing (all of it when the index
//! directory is gone), so a crash between a store commit and an index commit loses nothing.

mod query;

pub use query::{ParsedQuery, QueryError};

use crate::model::{Contact, Id, MembershipStatus};
use crate::store::{ContactChange, Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term,
};

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("search index lock poisoned")]
    Poisoned,
}

pub type Result<T, E = SearchError> = std::result::Result<T, E>;

/// Which contacts a search may return: decided by the policy module, applied here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    OwnedBy(Id),
}

#[derive(Clone, Copy)]
pub(crate) struct Fields {
    pub id: Field,
    pub owner: Field,
    pub account: Field,
    pub list: Field,
    pub email: Field,
    pub email_raw: Field,
    pub first_name: Field,
    pub last_name: Field,
    pub company: Field,
    pub phone: Field,
    pub tags: Field,
    pub attr_kv: Field,
    pub all: Field,
}

const NAME: &str = "ms_name";
const KEYWORD: &str = "ms_keyword";

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = |tok: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tok)
                .set_index_option(IndexRecordOption::WithFreqs),
        )
    };
    let fields = Fields {
        id: b.add_u64_field("id", INDEXED | FAST | STORED),
        owner: b.add_u64_field("owner", INDEXED),
        account: b.add_u64_field("account", INDEXED),
        list: b.add_u64_field("list", INDEXED),
        email: b.add_text_field("email", text(NAME)),
        email_raw: b.add_text_field("email_raw", text(KEYWORD)),
        first_name: b.add_text_field("first_name", text(NAME)),
        last_name: b.add_text_field("last_name", text(NAME)),
        company: b.add_text_field("company", text(NAME)),
        phone: b.add_text_field("phone", text(NAME)),
        tags: b.add_text_field("tags", text(KEYWORD)),
        attr_kv: b.add_text_field("attr_kv", text(KEYWORD)),
        all: b.add_text_field("all", text(NAME)),
    };
    (b.build(), fields)
}

pub(crate) fn name_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

pub(crate) fn keyword_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(RawTokenizer::default())
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// One page of search results: contact ids in rank order.
#[derive(Debug, Clone)]
pub struct Hits {
    pub ids: Vec<Id>,
    pub total: u64,
    pub next_offset: Option<usize>,
}

pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    dir: PathBuf,
    /// Highest change sequence added to the writer / committed.
    added: AtomicU64,
    committed: AtomicU64,
    commit_lock: Mutex<()>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("dir", &self.dir)
            .finish()
    }
}

const WRITER_BUDGET: usize = 96 * 1024 * 1024;

impl SearchIndex {
    /// Opens the index in `dir` (creating it when missing or unreadable) and brings it up to
    /// date with the store.
    pub fn open(dir: &Path, store: &Store) -> Result<SearchIndex> {
        let (schema, fields) = schema();
        std::fs::create_dir_all(dir).map_err(|e| SearchError::Index(e.into()))?;
        let index = match Index::open_in_dir(dir) {
            Ok(ix) if ix.schema() == schema => ix,
            Ok(_) | Err(_) if dir.join("meta.json").exists() => {
                tracing::warn!(dir = %dir.display(), "search index unreadable or of an old schema; rebuilding it from the store");
                std::fs::remove_dir_all(dir).map_err(|e| SearchError::Index(e.into()))?;
                std::fs::create_dir_all(dir).map_err(|e| SearchError::Index(e.into()))?;
                Index::create_in_dir(dir, schema)?
            }
            _ => Index::create_in_dir(dir, schema)?,
        };
        index.tokenizers().register(NAME, name_analyzer());
        index.tokenizers().register(KEYWORD, keyword_analyzer());
        let committed = index
            .load_metas()?
            .payload
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(0);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 4);
        let writer = index.writer_with_num_threads(threads, WRITER_BUDGET)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let ix = SearchIndex {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            dir: dir.to_path_buf(),
            added: AtomicU64::new(committed),
            committed: AtomicU64::new(committed),
            commit_lock: Mutex::new(()),
        };
        ix.catch_up(store)?;
        Ok(ix)
    }

    /// Replays store changes newer than the index's last commit.
    pub fn catch_up(&self, store: &Store) -> Result<u64> {
        let from = self.committed.load(Ordering::SeqCst);
        let head = store.last_contact_change()?;
        if head <= from {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        if from == 0 {
            tracing::info!("building the search index from the store");
        } else {
            tracing::info!(
                behind = head - from,
                "search index is behind the store; catching up"
            );
        }
        let mut failure = None;
        let n = store.contact_changes_since(from, 20_000, |batch| {
            if let Err(e) = self.apply(&batch) {
                failure = Some(e);
                return Err(StoreError::Invalid("search index update failed".into()));
            }
            Ok(())
        });
        if let Some(e) = failure {
            return Err(e);
        }
        let n = n?;
        self.added.fetch_max(head, Ordering::SeqCst);
        self.commit()?;
        store.prune_tombstones(self.committed.load(Ordering::SeqCst))?;
        tracing::info!(
            changes = n,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "search index up to date"
        );
        Ok(n)
    }

    fn document(&self, c: &Contact) -> TantivyDocument {
        let f = &self.fields;
        let mut d = TantivyDocument::default();
        d.add_u64(f.id, c.id);
        d.add_u64(f.owner, c.owner_id.unwrap_or(0));
        d.add_u64(f.account, c.account_id.unwrap_or(0));
        for m in &c.lists {
            if m.status != MembershipStatus::Unsubscribed {
                d.add_u64(f.list, m.list_id);
            }
        }
        d.add_text(f.email, &c.email);
        d.add_text(f.email_raw, &c.email);
        d.add_text(f.first_name, &c.first_name);
        d.add_text(f.last_name, &c.last_name);
        d.add_text(f.company, &c.company);
        d.add_text(f.phone, &c.phone);
        let mut all = String::with_capacity(128);
        for s in [&c.first_name, &c.last_name, &c.company, &c.email] {
            all.push_str(s);
            all.push(' ');
        }
        for t in &c.tags {
            d.add_text(f.tags, t);
            all.push_str(t);
            all.push(' ');
        }
        for (k, v) in &c.attributes {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            d.add_text(f.attr_kv, format!("{k}={v}"));
            all.push_str(&v);
            all.push(' ');
        }
        d.add_text(f.all, &all);
        d
    }

    /// Adds store changes (in sequence order) to the writer. Call [`commit`](Self::commit)
    /// to make them visible and durable.
    pub fn apply(&self, changes: &[ContactChange]) -> Result<()> {
        let writer = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
        let mut max = 0;
        for ch in changes {
            match ch {
                ContactChange::Upsert(c) => {
                    writer.delete_term(Term::from_field_u64(self.fields.id, c.id));
                    writer.add_document(self.document(c))?;
                }
                ContactChange::Delete { id, .. } => {
                    writer.delete_term(Term::from_field_u64(self.fields.id, *id));
                }
            }
            max = max.max(ch.seq());
        }
        self.added.fetch_max(max, Ordering::SeqCst);
        Ok(())
    }

    /// Commits everything added so far (group commit: concurrent callers share one commit)
    /// and reloads the reader.
    pub fn commit(&self) -> Result<()> {
        let target = self.added.load(Ordering::SeqCst);
        let _guard = self.commit_lock.lock().map_err(|_| SearchError::Poisoned)?;
        if self.committed.load(Ordering::SeqCst) >= target && target != 0 {
            return Ok(());
        }
        let seq = {
            let mut writer = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
            let seq = self.added.load(Ordering::SeqCst);
            let mut prepared = writer.prepare_commit()?;
            prepared.set_payload(&seq.to_string());
            prepared.commit()?;
            seq
        };
        self.committed.store(seq, Ordering::SeqCst);
        self.reader.reload()?;
        Ok(())
    }

    /// Makes deletions physical: commits, merges every segment into one (a merge leaves out
    /// deleted documents, their stored fields and the terms only they had), reloads the reader
    /// and deletes the files no longer used. Erasure runs it so that no index file still holds
    /// an erased contact.
    pub fn purge_deleted(&self) -> Result<()> {
        self.commit()?;
        let _guard = self.commit_lock.lock().map_err(|_| SearchError::Poisoned)?;
        let mut writer = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
        // a merge the merge policy started meanwhile makes ours fail: try again after it
        let mut tries = 0;
        loop {
            let ids = self.index.searchable_segment_ids()?;
            if ids.is_empty() {
                break;
            }
            match writer.merge(&ids).wait() {
                Ok(_) => break,
                Err(e) if tries < 20 => {
                    tracing::debug!(error = %e, "segment merge deferred");
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.reader.reload()?;
        writer.garbage_collect_files().wait()?;
        Ok(())
    }

    pub fn committed_seq(&self) -> u64 {
        self.committed.load(Ordering::SeqCst)
    }

    /// Runs a query. `offset`/`limit` page through the results in rank order (newest first
    /// when the query has no free text).
    pub fn search(
        &self,
        q: &ParsedQuery,
        scope: Scope,
        offset: usize,
        limit: usize,
    ) -> Result<Hits> {
        let searcher = self.reader.searcher();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Scope::OwnedBy(user) = scope {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_u64(self.fields.owner, user),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        let has_text = q.has_free_text();
        clauses.extend(q.clauses(&self.fields));
        let query: Box<dyn Query> = if clauses.is_empty() {
            Box::new(AllQuery)
        } else {
            if clauses.iter().all(|(o, _)| *o == Occur::MustNot) {
                clauses.push((Occur::Must, Box::new(AllQuery)));
            }
            Box::new(BooleanQuery::new(clauses))
        };
        let limit = limit.clamp(1, 1000);
        let addrs: Vec<DocAddress>;
        let total: usize;
        if has_text {
            let (top, count) = searcher.search(
                &query,
                &(
                    TopDocs::with_limit(limit)
                        .and_offset(offset)
                        .order_by_score(),
                    Count,
                ),
            )?;
            addrs = top.into_iter().map(|(_, a)| a).collect();
            total = count;
        } else {
            let (top, count) = searcher.search(
                &query,
                &(
                    TopDocs::with_limit(limit)
                        .and_offset(offset)
                        .order_by_fast_field::<u64>("id", Order::Desc),
                    Count,
                ),
            )?;
            addrs = top.into_iter().map(|(_, a)| a).collect();
            total = count;
        }
        let mut ids = Vec::with_capacity(addrs.len());
        for a in addrs {
            let col = searcher
                .segment_reader(a.segment_ord)
                .fast_fields()
                .u64("id")?;
            if let Some(id) = col.first(a.doc_id) {
                ids.push(id);
            }
        }
        let next = offset + ids.len();
        Ok(Hits {
            next_offset: (next < total && !ids.is_empty()).then_some(next),
            ids,
            total: total as u64,
        })
    }

    /// Number of contacts matching a query, under a scope.
    pub fn count(&self, q: &ParsedQuery, scope: Scope) -> Result<u64> {
        Ok(self.search(q, scope, 0, 1)?.total)
    }

    /// The writer is not poisoned and a searcher can be taken.
    pub fn is_usable(&self) -> bool {
        !self.writer.is_poisoned() && !self.commit_lock.is_poisoned() && {
            let _ = self.reader.searcher().num_docs();
            true
        }
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn index(&self) -> &Index {
        &self.index
    }
}
