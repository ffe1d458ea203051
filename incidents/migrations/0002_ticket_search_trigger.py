from django.db import migrations

SEARCH_TRIGGER = """
CREATE OR REPLACE FUNCTION incidents_ticket_search_update() RETURNS trigger AS $$
BEGIN
    NEW.search_vector :=
        setweight(to_tsvector('simple', coalesce(NEW.number, '')), 'A') ||
        setweight(to_tsvector('english', coalesce(NEW.title, '')), 'A') ||
        setweight(to_tsvector('english', array_to_string(NEW.affected_services, ' ')), 'B') ||
        setweight(to_tsvector('english', coalesce(NEW.description, '')), 'C');
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER incidents_ticket_search
    BEFORE INSERT OR UPDATE OF number, title, description, affected_services
    ON incidents_ticket
    FOR EACH ROW EXECUTE FUNCTION incidents_ticket_search_update();
"""

DROP = """
DROP TRIGGER IF EXISTS incidents_ticket_search ON incidents_ticket;
DROP FUNCTION IF EXISTS incidents_ticket_search_update();
"""


class Migration(migrations.Migration):
    """Keep Ticket.search_vector current in the database, for every writer (bulk loads too)."""

    dependencies = [("incidents", "0001_initial")]

    operations = [migrations.RunSQL(SEARCH_TRIGGER, DROP)]
