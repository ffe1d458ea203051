"""Knowledge sources, documents, chunks, embeddings and hybrid retrieval (issue: knowledge base)."""
