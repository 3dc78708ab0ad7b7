"""Stories: the articles of one event, from every provider and publisher, grouped as they
arrive (newsagg.stories.clustering decides; newsagg.store.stories keeps them)."""
